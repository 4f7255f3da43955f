/**
 * SQLite backend: one database file shared by every worker, each worker process holding its own
 * connection. better-sqlite3 is synchronous, so each query holds this worker's loop for its
 * duration (microseconds for these statements): realistic for S2, and what the worker count
 * is compared on.
 */
import Database from 'better-sqlite3';
import { StoreUnavailableError, seedItems, type Item, type ItemStore, type NewItem } from './store';

/**
 * How long a statement waits for another worker's write lock. Writes here take well under a
 * millisecond, so waiting this long means something is wrong; and a synchronous wait holds the
 * loop, so it must stay far below drover's stall timeout (10 s by default).
 */
const BUSY_TIMEOUT_MS = 2000;

/** Error codes meaning "the file cannot be used", answered 503; others are bugs (500). */
const UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|CANTOPEN|IOERR|FULL|READONLY|NOTADB|CORRUPT|PROTOCOL|PERM|AUTH)/;

function guard<T>(file: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && UNAVAILABLE.test(code)) throw new StoreUnavailableError(`${code} on ${file}: ${(err as Error).message}`);
    // better-sqlite3's own check, without a code: the directory went away after start-up.
    if (err instanceof TypeError && /directory does not exist/.test(err.message)) throw new StoreUnavailableError(`${file}: ${err.message}`);
    throw err;
  }
}

/** Blocks this worker for `ms`: only in the rare open race below, bounded by the busy timeout. */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Switching a fresh file to WAL needs an exclusive lock; when several workers open the file at
 * the same moment, SQLite may answer SQLITE_BUSY at once instead of invoking the busy handler.
 * The mode is persistent, so a retry usually just finds it already set.
 */
function enableWal(db: Database.Database): void {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      db.pragma('journal_mode = WAL');
      return;
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw err;
      sleepSync(10);
    }
  }
}

interface Row {
  id: number;
  name: string;
  price: number;
  tags: string;
  created_at: string;
}

const toItem = (r: Row): Item => ({ id: r.id, name: r.name, price: r.price, tags: JSON.parse(r.tags) as string[], created_at: r.created_at });

/**
 * Opens (creating if needed) the shared database file, its schema and its seed. Race-safe across
 * workers starting together: table creation and seeding run in one `BEGIN IMMEDIATE` transaction,
 * which takes the write lock first, so the second worker sees a seeded table and skips the seed.
 */
export async function openSqliteStore(file: string): Promise<ItemStore> {
  // The directory must exist: creating it here would hide a mistyped path (and Node 20's
  // recursive mkdir spins forever on some paths, e.g. under /proc).
  const db = guard(file, () => {
    const d = new Database(file, { timeout: BUSY_TIMEOUT_MS });
    try {
      d.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      enableWal(d);
      // In WAL mode NORMAL cannot corrupt the file; it only skips an fsync per commit.
      d.pragma('synchronous = NORMAL');
      d.transaction(() => {
        // AUTOINCREMENT: a deleted id is never handed out again, as with PostgreSQL's identity,
        // so a client holding an old id gets a 404 rather than someone else's item.
        d.exec(`CREATE TABLE IF NOT EXISTS items (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          name TEXT NOT NULL,
          price REAL NOT NULL,
          tags TEXT NOT NULL,
          created_at TEXT NOT NULL
        )`);
        if (d.prepare('SELECT 1 FROM items LIMIT 1').get() === undefined) {
          const insert = d.prepare('INSERT INTO items (name, price, tags, created_at) VALUES (?, ?, ?, ?)');
          const now = new Date().toISOString();
          for (const s of seedItems()) insert.run(s.name, s.price, JSON.stringify(s.tags), now);
        }
      }).immediate();
      return d;
    } catch (err) {
      d.close();
      throw err;
    }
  });

  const cols = 'id, name, price, tags, created_at';
  const listStmt = db.prepare<[number], Row>(`SELECT ${cols} FROM items ORDER BY id DESC LIMIT ?`);
  const getStmt = db.prepare<[number], Row>(`SELECT ${cols} FROM items WHERE id = ?`);
  const insertStmt = db.prepare<[string, number, string, string]>('INSERT INTO items (name, price, tags, created_at) VALUES (?, ?, ?, ?)');
  const deleteStmt = db.prepare<[number]>('DELETE FROM items WHERE id = ?');

  return {
    kind: 'sqlite',
    list: async (limit) => guard(file, () => listStmt.all(limit).map(toItem)),
    get: async (id) => guard(file, () => {
      const row = getStmt.get(id);
      return row && toItem(row);
    }),
    create: async (input: NewItem) =>
      guard(file, () => {
        const created_at = new Date().toISOString();
        const { lastInsertRowid } = insertStmt.run(input.name, input.price, JSON.stringify(input.tags), created_at);
        return { id: Number(lastInsertRowid), name: input.name, price: input.price, tags: [...input.tags], created_at };
      }),
    remove: async (id) => guard(file, () => deleteStmt.run(id).changes > 0),
    close: async () => {
      if (db.open) db.close();
    },
  };
}
