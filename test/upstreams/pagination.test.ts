import t from 'tap'
import { PaginationGuard } from '../../src/upstreams/pagination.js'
import { UpstreamError } from '../../src/domain/errors.js'

t.test('a link followed twice is a loop', async t => {
  const guard = new PaginationGuard('cliniko')
  guard.follow('https://x/patients?page=2')
  guard.follow('https://x/patients?page=3')
  t.throws(() => guard.follow('https://x/patients?page=2'), new UpstreamError('upstream_pagination_loop', 'cliniko sent a next page that was already read; stopped to avoid a loop'))
})

t.test('a page repeating the previous page is a loop; equal pages apart and empty pages are not', async t => {
  const guard = new PaginationGuard('ocl')
  guard.page(['{"id":1}', '{"id":2}'])
  guard.page(['{"id":3}'])
  guard.page(['{"id":1}', '{"id":2}'])
  guard.page([])
  guard.page([])
  t.throws(() => guard.page(['{"id":1}', '{"id":2}']), { code: 'upstream_pagination_loop' })
  t.doesNotThrow(() => new PaginationGuard('ocl').page(['{"id":1}\n', '{"id":2}']))
})
