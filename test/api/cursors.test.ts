/** The opaque cursors of job lists and result pages (src/api/cursors.ts). */
import t from 'tap'
import { z } from 'zod'
import { decodeCursor, encodeCursor } from '../../src/api/cursors.js'

t.test('cursors round-trip and refuse forgeries', async t => {
  const schema = z.tuple([z.number().int(), z.number().int()])
  t.same(decodeCursor(encodeCursor([3, 999]), schema), [3, 999])
  t.equal(decodeCursor('not base64 json', schema), null)
  t.equal(decodeCursor(encodeCursor({ page: 1 }), schema), null)
})
