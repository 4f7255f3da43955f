/**
 * The storage behind the S2 `/items` routes: one small interface, two implementations (embedded
 * SQLite shared by every worker through one file, or PostgreSQL when DATABASE_URL is set). The
 * router knows only this interface, so the same behaviour tests run against both.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HttpError } from '../../toolkit/http-error';

/** An item as stored and as answered to clients. */
export interface Item {
  id: number;
  name: string;
  price: number;
  tags: string[];
  /** ISO 8601, UTC. */
  created_at: string;
}

/** What a client may send to create an item (already validated). */
export interface NewItem {
  name: string;
  price: number;
  tags: string[];
}

/**
 * One worker's handle on the item table. Every method may reject with a `StoreUnavailableError`
 * (503 `DB_UNAVAILABLE`) when the database cannot be reached; anything else is a bug (500).
 */
export interface ItemStore {
  /** Which backend this is, for logs and tests. */
  readonly kind: 'sqlite' | 'postgres';
  /** Newest first (highest id first: ids grow with insertion order), at most `limit` items. */
  list(limit: number): Promise<Item[]>;
  /** The item, or undefined when there is none with that id. */
  get(id: number): Promise<Item | undefined>;
  /** Inserts and returns the item with its id and creation time. */
  create(input: NewItem): Promise<Item>;
  /** True when an item was deleted, false when there was none. */
  remove(id: number): Promise<boolean>;
  /** Releases the connection(s); the store is unusable afterwards. */
  close(): Promise<void>;
}

/**
 * Largest id a client can ask for: the PostgreSQL column is a 32-bit `integer`, and a bigger
 * number in a query would be a type error (500) rather than the 404 it really is.
 */
export const MAX_ID = 2_147_483_647;

/** Items inserted into an empty table, so that reads have data from the first request. */
export const SEED_COUNT = 1000;

/** The seed rows: deterministic, so every backend and every run start from the same data. */
export function seedItems(count = SEED_COUNT): NewItem[] {
  return Array.from({ length: count }, (_, i) => ({
    name: `seed item ${i + 1}`,
    price: ((i * 37) % 10_000) / 100,
    tags: ['seed', `group-${i % 10}`],
  }));
}

/** Backend choice and its settings, read from the environment once per store opened. */
export type StoreConfig =
  | { kind: 'postgres'; url: string; poolSize: number }
  | { kind: 'sqlite'; path: string };

/** Default connections per worker: 5 × N workers stays under PostgreSQL's default 100. */
export const DEFAULT_PG_POOL = 5;

/**
 * `DATABASE_URL` set → PostgreSQL with a pool of `DEMO_PG_POOL` (default 5) per worker; otherwise
 * SQLite at `DEMO_SQLITE_PATH` (default `drover-demo.sqlite` in the OS temp dir; its directory
 * must exist). Throws a full-sentence error for a bad pool size or a missing directory: a typo
 * should neither silently become the default nor turn into a 503 on every request.
 */
export function storeConfigFromEnv(env: NodeJS.ProcessEnv = process.env): StoreConfig {
  const url = env.DATABASE_URL?.trim();
  if (url) {
    const raw = env.DEMO_PG_POOL?.trim() || String(DEFAULT_PG_POOL);
    if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 100) {
      throw new Error(`DEMO_PG_POOL must be a whole number from 1 to 100, got ${JSON.stringify(raw)}.`);
    }
    return { kind: 'postgres', url, poolSize: Number(raw) };
  }
  const file = path.resolve(env.DEMO_SQLITE_PATH?.trim() || path.join(os.tmpdir(), 'drover-demo.sqlite'));
  // Checked here, once, so a mistyped path stops the app from loading with this sentence rather
  // than answering 503 to every request.
  if (!fs.statSync(path.dirname(file), { throwIfNoEntry: false })?.isDirectory()) {
    throw new Error(`DEMO_SQLITE_PATH is ${JSON.stringify(file)}, but its directory does not exist; create it first.`);
  }
  return { kind: 'sqlite', path: file };
}

/**
 * Opens the configured store, schema and seed included. The backends are loaded on demand so that
 * a SQLite deployment never loads `pg` and the reverse.
 */
export async function openStore(config: StoreConfig): Promise<ItemStore> {
  if (config.kind === 'postgres') {
    const { openPostgresStore } = await driver('pg', () => import('./postgres.js'));
    return openPostgresStore(config.url, config.poolSize);
  }
  const { openSqliteStore } = await driver('better-sqlite3', () => import('./sqlite.js'));
  return openSqliteStore(config.path);
}

/**
 * The database drivers are the demo's, not drover's: they are devDependencies, so drover installed
 * as a dependency does not build a native module nobody asked for. Without one, `/items` answers
 * 503 and the log says what to install.
 */
async function driver<T>(name: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if ((code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') && String((err as Error).message).includes(`'${name}'`)) {
      throw new StoreUnavailableError(`the demo's /items needs the ${name} package, which drover does not install for you: npm install ${name}`);
    }
    throw err;
  }
}

/**
 * The client-facing error for "the database cannot answer right now", keeping the cause for the
 * server's own log. The cause's text never reaches the client.
 */
export class StoreUnavailableError extends HttpError {
  constructor(readonly reason: string) {
    super(503, 'DB_UNAVAILABLE', 'the database is unavailable; retry later');
  }
}
