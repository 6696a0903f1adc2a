/** Slowing of failed authentications (src/api/auth-throttle.ts): lockout, its end, its window, bounded memory. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AuthThrottle } from '../../src/api/auth-throttle';

describe('auth throttle', () => {
  it('locks an address out after N failures in the window, until the oldest leaves it; others are not affected', () => {
    let now = 1_000_000;
    const t = new AuthThrottle({ maxFailures: 3, windowMs: 60_000, now: () => now });
    assert.equal(t.fail('a'), false);
    now += 10_000;
    assert.equal(t.fail('a'), false);
    assert.equal(t.lockedFor('a'), 0);
    now += 10_000;
    assert.equal(t.fail('a'), true, 'the third failure locks');
    assert.equal(t.lockedFor('a'), 40_000, 'until the first failure is 60 s old');
    assert.equal(t.lockedFor('b'), 0);
    now += 39_999;
    assert.equal(t.lockedFor('a'), 1);
    now += 1;
    assert.equal(t.lockedFor('a'), 0, 'one more try once the oldest failure left the window');
    assert.equal(t.fail('a'), true, '... and a failure then locks again');
    assert.equal(t.lockedFor('a'), 10_000, 'until the second failure is 60 s old');
  });

  it('failures spread wider than the window never lock', () => {
    let now = 0;
    const t = new AuthThrottle({ maxFailures: 3, windowMs: 1000, now: () => now });
    for (let i = 0; i < 50; i++) {
      assert.equal(t.fail('a'), false);
      assert.equal(t.lockedFor('a'), 0);
      now += 501;
    }
  });

  it('0 failures turns it off', () => {
    const t = new AuthThrottle({ maxFailures: 0, windowMs: 1000 });
    for (let i = 0; i < 100; i++) assert.equal(t.fail('a'), false);
    assert.equal(t.lockedFor('a'), 0);
    assert.equal(t.tracked, 0);
  });

  it('tracks at most maxAddresses, dropping the least recently failed; expired entries go', () => {
    let now = 0;
    const t = new AuthThrottle({ maxFailures: 2, windowMs: 1000, maxAddresses: 100, now: () => now });
    t.fail('keep');
    for (let i = 0; i < 10_000; i++) {
      t.fail(`addr-${i}`);
      if (i % 50 === 0) t.fail('keep');
      assert.ok(t.tracked <= 100);
    }
    assert.ok(t.lockedFor('keep') > 0, 'an address that keeps failing stays tracked');
    assert.equal(t.lockedFor('addr-0'), 0);
    now += 1001;
    assert.equal(t.lockedFor('keep'), 0);
    for (let i = 9_900; i < 10_000; i++) t.lockedFor(`addr-${i}`);
    assert.ok(t.tracked <= 1, `expired entries are dropped when looked at (${t.tracked} left)`);
  });

  it('refuses nonsense settings', () => {
    assert.throws(() => new AuthThrottle({ maxFailures: -1, windowMs: 1000 }));
    assert.throws(() => new AuthThrottle({ maxFailures: 1.5, windowMs: 1000 }));
    assert.throws(() => new AuthThrottle({ maxFailures: 1, windowMs: 0 }));
  });
});
