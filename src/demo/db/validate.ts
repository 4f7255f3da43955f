/**
 * Validation of what clients send to `/items`: every refusal is a 400 whose message starts with
 * the offending field, so a client can tell which one to fix.
 */
import { HttpError } from '../../toolkit/http-error';
import { MAX_ID, type NewItem } from './store';

/** Longest item name, in characters. */
export const NAME_MAX = 200;
/** Most tags on one item. */
export const TAGS_MAX = 10;
/** Longest tag, in characters. */
export const TAG_MAX = 50;
/** Items per page of `GET /items` when `limit` is not given. */
export const LIMIT_DEFAULT = 20;
/** Largest page: a bigger one would make a list request the slow request of S2. */
export const LIMIT_MAX = 100;

const FIELDS = new Set(['name', 'price', 'tags']);

function invalid(message: string): HttpError {
  return new HttpError(400, 'VALIDATION_FAILED', message);
}

/** Length in characters as people count them (code points), not UTF-16 units. */
const chars = (s: string): number => [...s].length;

/**
 * PostgreSQL text cannot hold NUL and answers such a value with an error (a 500 for the client),
 * so both backends refuse it up front and behave alike.
 */
const hasNul = (s: string): boolean => s.includes('\u0000');

/**
 * The body of `POST /items`: `{ name: string (1..200 chars), price: number >= 0, tags?: string[]
 * (at most 10, each at most 50 chars) }`. Unknown fields are refused rather than dropped: a typo
 * such as `prise` would otherwise store an item without the intended value.
 */
export function parseNewItem(body: unknown): NewItem {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('body must be a JSON object');
  const o = body as Record<string, unknown>;
  for (const key of Object.keys(o)) if (!FIELDS.has(key)) throw invalid(`${key} is not a known field (expected name, price, tags)`);

  const { name, price, tags } = o;
  if (name === undefined) throw invalid('name is required');
  if (typeof name !== 'string' || chars(name) < 1 || chars(name) > NAME_MAX || hasNul(name)) {
    throw invalid(`name must be a string of 1 to ${NAME_MAX} characters (no NUL)`);
  }
  if (price === undefined) throw invalid('price is required');
  // JSON.parse turns 1e400 into Infinity: finite is part of "a number".
  if (typeof price !== 'number' || !Number.isFinite(price) || price < 0) throw invalid('price must be a number >= 0');

  if (tags === undefined) return { name, price, tags: [] };
  if (!Array.isArray(tags)) throw invalid('tags must be an array of strings');
  if (tags.length > TAGS_MAX) throw invalid(`tags must have at most ${TAGS_MAX} entries`);
  tags.forEach((t: unknown, i) => {
    if (typeof t !== 'string' || chars(t) > TAG_MAX || hasNul(t)) throw invalid(`tags[${i}] must be a string of at most ${TAG_MAX} characters (no NUL)`);
  });
  return { name, price, tags: tags as string[] };
}

/**
 * An id from the path: a positive whole number without sign or leading zeros, else 400.
 * Returns undefined for ids beyond the largest that can exist: those are a 404, not a 400.
 */
export function parseId(raw: string): number | undefined {
  if (!/^[1-9]\d*$/.test(raw)) throw invalid('id must be a positive whole number');
  const id = Number(raw);
  return id <= MAX_ID ? id : undefined;
}

/** `?limit=`: a whole number from 1 to 100, default 20. A repeated parameter is refused. */
export function parseLimit(raw: unknown): number {
  if (raw === undefined) return LIMIT_DEFAULT;
  if (typeof raw !== 'string' || !/^\d{1,3}$/.test(raw) || Number(raw) < 1 || Number(raw) > LIMIT_MAX) {
    throw invalid(`limit must be a whole number from 1 to ${LIMIT_MAX}`);
  }
  return Number(raw);
}
