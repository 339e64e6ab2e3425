/**
 * Exit codes of the pgfence command. `run` passes its command's own code through, so its own
 * outcomes use codes a command rarely picks; the README's cli section lists them.
 */
export const EXIT = Object.freeze({
  /** Success. */
  OK: 0,
  /** The command did not do what was asked: release refused, demo verification failed, … */
  FAILED: 1,
  /** Bad usage: an unknown flag, a missing value, a malformed duration or key. */
  USAGE: 2,
  /** The database could not be reached, refused the login, or has no pgfence schema. */
  UNAVAILABLE: 69,
  /** `run`: the key is held elsewhere and the wait (`--wait`, e.g. 0) ran out, like `flock -n`. */
  NOT_ACQUIRED: 75,
  /** `run`: the lease (or advisory lock) was lost while the command ran; the command was stopped. */
  LOST: 76,
  /** Interrupted by SIGINT (128 + 2), as shells report it. */
  INTERRUPTED: 130,
});
