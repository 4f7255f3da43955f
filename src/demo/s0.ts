/**
 * Scenario S0's payload: a query service returning 40,000 nested client records (~23 MB of JSON).
 * Exact shapes from the field report: Address{id, str1..str8}; Account{id, address,
 * str1..str10, str12..str16} (there is no str11); Client{id, address, bank_accounts: [Account],
 * str1..str8}; every strN null.
 */
type Nulls = Record<string, null>;

function nulls(names: string[]): Nulls {
  const o: Nulls = {};
  for (const n of names) o[n] = null;
  return o;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `str${from + i}`);
const ADDRESS_FIELDS = range(1, 8);
const ACCOUNT_FIELDS = [...range(1, 10), ...range(12, 16)];
const CLIENT_FIELDS = range(1, 8);
/** One account per client reproduces the report's size: 40,000 clients ≈ 23 MB of JSON. */
export const ACCOUNTS_PER_CLIENT = 1;

const address = (id: number) => ({ id, ...nulls(ADDRESS_FIELDS) });
const account = (id: number) => ({ id, address: address(id), ...nulls(ACCOUNT_FIELDS) });

export function client(id: number) {
  const accounts = [];
  for (let k = 0; k < ACCOUNTS_PER_CLIENT; k++) accounts.push(account(id * ACCOUNTS_PER_CLIENT + k));
  return { id, address: address(id), bank_accounts: accounts, ...nulls(CLIENT_FIELDS) };
}

/** All at once: what a naive handler builds before `res.json()`. */
export function buildClients(count: number) {
  const items = [];
  for (let i = 0; i < count; i++) items.push(client(i));
  return items;
}

/** One at a time, as the streaming writer pulls them: building never blocks the loop either. */
export function* clientsLazy(count: number) {
  for (let i = 0; i < count; i++) yield client(i);
}
