import { SessionChangedError } from '../errors.js';
import { settle } from '../util/settle.js';
import type { AdvisorySession } from './advisory-session.js';
import type { WaitSessions } from './wait-sessions.js';

/**
 * The turnstiles of one waiting exclusive `lockAll` (see turnstile.ts), held on a wait session
 * of its own, which also serves its waits in the server: one for each key that has kept the set
 * waiting (a free key's readers are not held up), from the first time it did until the set has
 * its keys or gives up. Best effort: a turnstile another set holds is tried again on the next
 * round, and without a wait session the set waits as before, without them. A session that dies
 * takes its turnstiles with it.
 * @internal
 */
export class HeldTurnstiles {
  readonly #waits: WaitSessions;
  #session: AdvisorySession | undefined;
  /** Key ids whose turnstile is held. */
  readonly #held = new Set<bigint>();
  /** Key ids that have kept the set waiting. */
  readonly #wanted = new Set<bigint>();

  constructor(waits: WaitSessions) {
    this.#waits = waits;
  }

  /** The wait session holding the turnstiles, if there is one alive. */
  get session(): AdvisorySession | undefined {
    return this.#session?.alive ? this.#session : undefined;
  }

  /**
   * Takes the turnstile of `blocked` (a key id that kept the set waiting), and of those that did
   * before, that are not held yet, by `deadline`. Rejects with the signal's reason or a
   * `SessionChangedError`; any other failure leaves the set without turnstiles this round.
   */
  async raise(blocked: bigint, deadline: number, signal: AbortSignal | undefined): Promise<void> {
    this.#wanted.add(blocked);
    if (deadline <= performance.now()) return; // the wait is over: nothing to hold up for
    if (this.#session && !this.#session.alive) {
      this.#session = undefined;
      this.#held.clear();
    }
    if (!this.#session) {
      const checkout = await this.#waits.checkoutWithin(deadline, signal);
      if (checkout === null || checkout === 'timeout') return;
      this.#session = checkout;
    }
    const session = this.#session;
    const missing = [...this.#wanted].filter((id) => !this.#held.has(id));
    if (missing.length === 0) return;
    const taken = await settle(
      Promise.all(missing.map((id) => session.run('lock-turnstile', id))),
      deadline,
      signal,
    );
    if (taken.kind === 'done') {
      missing.forEach((t, i) => taken.value[i] && this.#held.add(t));
      return;
    }
    // Unanswered or failed: whatever it took is in doubt, so the session goes, and with it
    // every turnstile it held.
    session.destroy(new Error('taking turnstiles did not succeed in time'));
    this.#session = undefined;
    this.#held.clear();
    if (taken.kind === 'aborted') throw signal!.reason;
    if (taken.kind === 'failed' && taken.error instanceof SessionChangedError) throw taken.error;
  }

  /**
   * Gives the turnstiles back (in the background: the set's callers need not wait for it) and
   * the session with them. A failure ends the session, which gives them back too.
   */
  lower(): void {
    const session = this.#session;
    const held = [...this.#held];
    this.#session = undefined;
    this.#held.clear();
    if (!session?.alive) return;
    Promise.all(held.map((id) => session.run('unlock-turnstile', id)))
      .then((released) => {
        if (released.every(Boolean)) this.#waits.checkin(session);
        else void session.close();
      })
      // A failed statement has ended the session (see advisory-session.ts), which gave them
      // back; the session's end is reported where every session's is.
      .catch((error: unknown) => session.destroy(error));
  }
}
