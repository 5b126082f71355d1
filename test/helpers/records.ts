/** Records as text, for comparing what an adapter saved with the JSON text a simulator served. */
import type { PageRecords } from '../../src/contract/adapter.js'
import { recordAt } from '../../src/contract/records.js'

export const recordTexts = (records: PageRecords): string[] =>
  Array.from({ length: records.length }, (_, i) => {
    const r = recordAt(records, i)
    return typeof r === 'string' ? r : Buffer.from(r.buffer, r.byteOffset, r.byteLength).toString('utf8')
  })
