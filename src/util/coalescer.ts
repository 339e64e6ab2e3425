interface Pending<Req, Res> {
  request: Req;
  resolve: (value: Res) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit for statements: requests submitted in the same turn of the event loop (or while
 * `maxInFlight` batches are already running) are handed to `run` together, so concurrent callers
 * share one statement and one commit. `run` answers each request separately, so one request's
 * failure never becomes another's.
 * @internal
 */
export class Coalescer<Req, Res> {
  readonly #run: (requests: Req[]) => Promise<PromiseSettledResult<Res>[]>;
  readonly #maxBatch: number;
  readonly #maxInFlight: number;
  #pending: Pending<Req, Res>[] = [];
  #scheduled = false;
  #inFlight = 0;

  constructor(
    run: (requests: Req[]) => Promise<PromiseSettledResult<Res>[]>,
    options: { maxBatch: number; maxInFlight: number },
  ) {
    this.#run = run;
    this.#maxBatch = options.maxBatch;
    this.#maxInFlight = options.maxInFlight;
  }

  submit(request: Req): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      this.#pending.push({ request, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#pending.length === 0) return;
    this.#scheduled = true;
    // setImmediate, not a microtask: callers woken by one I/O event reach submit() after a few
    // promise hops each, and should all make the same batch.
    setImmediate(() => {
      this.#scheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    while (this.#pending.length > 0 && this.#inFlight < this.#maxInFlight) {
      const batch = this.#pending.splice(0, this.#maxBatch);
      this.#inFlight += 1;
      // #execute answers every request of the batch itself and never rejects.
      void this.#execute(batch).finally(() => {
        this.#inFlight -= 1;
        this.#flush();
      });
    }
  }

  async #execute(batch: Pending<Req, Res>[]): Promise<void> {
    try {
      const results = await this.#run(batch.map((entry) => entry.request));
      batch.forEach((entry, i) => {
        const result = results[i];
        if (result === undefined)
          entry.reject(new Error('pgfence: a batched request got no answer'));
        else if (result.status === 'fulfilled') entry.resolve(result.value);
        else entry.reject(result.reason);
      });
    } catch (error) {
      for (const entry of batch) entry.reject(error);
    }
  }
}
