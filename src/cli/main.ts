// The pgfence command. Its subcommands (demo, run, ls, migrate, reap, release) are being built;
// until then it prints its usage.
const USAGE = `usage: pgfence <command> [options]

commands:
  demo       watch workers share jobs and leases on an embedded PostgreSQL
  run        run a command while holding a lease, like flock(1) for a fleet
  ls         list live leases and advisory locks
  migrate    create or update the pgfence schema
  reap       delete expired leases
  release    force-release a lease
`;

process.stdout.write(USAGE);
process.exitCode =
  process.argv.length > 2 && !['-h', '--help', 'help'].includes(process.argv[2] ?? '') ? 2 : 0;
