/**
 * Waits for `promise` at most `ms`, then goes on without it. For cleanup that talks to a
 * database which may have stopped answering (a release, closing a pool): the command must
 * still exit with its code rather than hang on a dead socket.
 */
export async function bounded<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise.catch(() => undefined), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
