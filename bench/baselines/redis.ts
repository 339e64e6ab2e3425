// Redis with redlock, single instance: the lock most teams reach for first. Only loopback.
import { Redis } from 'ioredis';
import Redlock from 'redlock';

export const REDIS_URL = process.env.PGFENCE_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** True when a Redis answers PING at `url` within a second. */
export async function redisAnswers(url: string = REDIS_URL): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 1_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/** A redlock over one Redis connection of its own. */
export function openRedlock(
  url: string,
  retry: { retryCount: number; retryDelay: number },
): { redlock: Redlock; close(): Promise<void> } {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  const redlock = new Redlock([client], { ...retry, retryJitter: 0, driftFactor: 0.01 });
  return {
    redlock,
    close: async () => {
      await client.quit().catch(() => client.disconnect());
    },
  };
}
