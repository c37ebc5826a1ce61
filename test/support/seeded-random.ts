/**
 * Reproducible randomness for tests. Every randomized test draws from a generator seeded from
 * BATON_SEED when it is set, or from a fresh seed that is printed, so a failure can be replayed with
 * `BATON_SEED=<seed> npm test`.
 */
import seedrandom from "seedrandom";

export interface SeededRandom {
  readonly seed: string;
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [min, max], both included. */
  int(min: number, max: number): number;
  pick<T>(items: readonly T[]): T;
  bytes(count: number): Buffer;
}

/** The seed for this run: BATON_SEED, or a random one. Logged with `label` either way. */
export function testSeed(label: string): string {
  const seed = process.env.BATON_SEED ?? String(Math.floor(Math.random() * 0x7fffffff));
  console.log(`[${label}] seed ${seed} (replay with BATON_SEED=${seed})`);
  return seed;
}

export function seededRandom(label: string): SeededRandom {
  return randomFromSeed(`${label}:${testSeed(label)}`);
}

/** A generator for an exact seed string (e.g. one per simulated client, derived from the run's seed). */
export function randomFromSeed(seed: string): SeededRandom {
  const prng = seedrandom(seed);
  const int = (min: number, max: number): number => min + Math.floor(prng() * (max - min + 1));
  return {
    seed,
    next: () => prng(),
    int,
    pick: <T>(items: readonly T[]): T => items[int(0, items.length - 1)]!,
    bytes(count) {
      const out = Buffer.allocUnsafe(count);
      for (let i = 0; i < count; i++) out[i] = int(0, 255);
      return out;
    },
  };
}
