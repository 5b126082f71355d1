/** PostgreSQL's binary COPY format, as job inserts (job-insert.ts) and result reads (result-stream.ts) use it. */

/** "PGCOPY\n\377\r\n\0", then int32 flags and int32 header-extension length. */
export const COPY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1')

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/**
 * COPY takes no bind parameters: a job id goes into a statement's text or a tuple's bytes only after this check,
 * so nothing but 32 hex digits and 4 dashes can ever get there.
 */
export function assertUuid (id: string): string {
  if (!UUID.test(id)) throw new Error('job id is not a UUID')
  return id
}
