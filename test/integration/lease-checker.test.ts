// The mutual-exclusion checker must be able to see what it is there to see.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testUrl } from '../support/database.js';
import {
  analyseChecker,
  CheckerClient,
  createChecker,
  dropChecker,
} from '../support/mutex-checker.js';

describe('the mutual-exclusion checker', () => {
  let schema: string;
  beforeAll(async () => {
    schema = await createChecker(testUrl());
  });
  afterAll(async () => {
    await dropChecker(testUrl(), schema);
  });

  it('counts an overlap and a token regression when holders break the rules', async () => {
    const a = await CheckerClient.connect(testUrl(), schema);
    const b = await CheckerClient.connect(testUrl(), schema);
    try {
      await a.enter('k', 'p1/0', 10n);
      await b.enter('k', 'p2/0', 11n); // a has not left: an overlap
      await a.exit('k', 'p1/0');
      await b.exit('k', 'p2/0');
      await a.enter('k', 'p1/0', 9n); // a smaller token than the last one: a regression
      await a.exit('k', 'p1/0');
      await b.enter('other', 'p2/0', 1n);
      await b.exit('other', 'p2/0');
    } finally {
      await a.close();
      await b.close();
    }
    const figures = await analyseChecker(testUrl(), schema);
    expect(figures).toMatchObject({ acquisitions: 4, overlaps: 1, regressions: 1 });
    expect(figures.perKeyAndProcess).toEqual({ k: { p1: 2, p2: 1 }, other: { p2: 1 } });
  });
});
