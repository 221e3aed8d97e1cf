// A byte-bounded LRU cache for container metadata tables and decompressed grains/clusters
// (VMDK grain tables, qcow2 L2 tables): keeps a sector read at O(1) table lookups. The two shared
// caches bound the memory of a whole parent chain, not of each image in it.
import { GRAIN_CACHE_BYTES, TABLE_CACHE_BYTES } from "./limits.ts";

/** Least-recently-used map whose total weight (bytes) never exceeds `budget`. */
export class LruCache<K, V> {
  private map = new Map<K, { v: V; w: number }>();
  private used = 0;
  readonly budget: number;
  hits = 0;
  misses = 0;

  constructor(budget: number) {
    this.budget = Math.max(1, budget);
  }

  get(key: K): V | undefined {
    const e = this.map.get(key);
    if (!e) { this.misses++; return undefined; }
    this.hits++;
    // Map iteration order is insertion order: re-insert to mark as most recently used.
    this.map.delete(key);
    this.map.set(key, e);
    return e.v;
  }

  set(key: K, v: V, weight: number): void {
    const old = this.map.get(key);
    if (old) { this.used -= old.w; this.map.delete(key); }
    if (weight > this.budget) return;               // too large to keep: the caller still has it
    while (this.used + weight > this.budget && this.map.size > 0) {
      const oldest = this.map.keys().next().value as K;
      const e = this.map.get(oldest)!;
      this.used -= e.w;
      this.map.delete(oldest);
    }
    this.map.set(key, { v, w: weight });
    this.used += weight;
  }

  /** Cached value, or `load()` stored under `key` with its weight. */
  getOrLoad(key: K, load: () => V, weigh: (v: V) => number): V {
    const hit = this.get(key);
    if (hit !== undefined) return hit;
    const v = load();
    this.set(key, v, weigh(v));
    return v;
  }

  get size(): number { return this.map.size; }
  get bytes(): number { return this.used; }

  clear(): void {
    this.map.clear();
    this.used = 0;
  }

  /** Forget every entry whose key matches (an image being closed). */
  dropWhere(match: (key: K) => boolean): void {
    for (const [k, e] of this.map) {
      if (match(k)) { this.used -= e.w; this.map.delete(k); }
    }
  }
}

/** Process-wide caches keyed by `${owner}:${what}`; `owner` comes from cacheOwner(). */
export const tableCache = new LruCache<string, Buffer>(TABLE_CACHE_BYTES);
export const grainCache = new LruCache<string, Buffer>(GRAIN_CACHE_BYTES);

let owners = 0;
/** A key prefix unique to one open image, and the function that drops its entries on close. */
export function cacheOwner(): { prefix: string; release(): void } {
  const prefix = `${++owners}:`;
  return {
    prefix,
    release() {
      const mine = (k: string) => k.startsWith(prefix);
      tableCache.dropWhere(mine);
      grainCache.dropWhere(mine);
    },
  };
}
