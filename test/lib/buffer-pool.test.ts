import t from 'tap'
import { BufferPool } from '../../src/lib/buffer-pool.js'

const KB = 1024

t.test('a buffer given back serves the next take of its size or less; its memory is reused', async t => {
  const pool = new BufferPool(2, 256 * KB, 64 * KB)
  const a = pool.take(100 * KB)
  t.equal(a.length, 100 * KB, 'exactly the size asked for')
  pool.give(a)
  t.equal(pool.spareCount, 1)
  const b = pool.take(80 * KB)
  t.equal(b.length, 80 * KB)
  t.equal(b.buffer, a.buffer, 'the same memory')
  t.equal(pool.spareCount, 0)
  const c = pool.take(120 * KB)
  t.not(c.buffer, a.buffer, 'taken buffers are never shared')
})

t.test('a small take still allocates minBytes, so one buffer serves pages of other sizes', async t => {
  const pool = new BufferPool(2, 256 * KB, 64 * KB)
  const a = pool.take(10)
  t.equal(a.length, 10)
  t.equal(a.buffer.byteLength, 64 * KB)
  pool.give(a)
  t.equal(pool.take(60 * KB).buffer, a.buffer)
})

t.test('bounded: no more than maxCount spares, none over maxBytes, no slab shared by small buffers', async t => {
  const pool = new BufferPool(2, 256 * KB, 64 * KB)
  const big = pool.take(300 * KB)
  t.equal(big.buffer.byteLength, 300 * KB, 'a larger buffer is allocated as asked')
  pool.give(big)
  t.equal(pool.spareCount, 0, 'and never kept')
  pool.give(Buffer.allocUnsafe(100))
  t.equal(pool.spareCount, 0, 'a buffer from Node\'s shared slab is never kept')
  for (let i = 0; i < 3; i++) pool.give(pool.take(64 * KB - i))
  t.equal(pool.spareCount, 1, 'one buffer went round')
  const bufs = [pool.take(64 * KB), pool.take(64 * KB), pool.take(64 * KB)]
  for (const b of bufs) pool.give(b)
  t.equal(pool.spareCount, 2, 'maxCount')
})

t.test('a buffer given back twice is kept once, so two takers never share it', async t => {
  const pool = new BufferPool(4, 256 * KB, 64 * KB)
  const a = pool.take(64 * KB)
  pool.give(a)
  pool.give(a.subarray(10))
  t.equal(pool.spareCount, 1)
  const x = pool.take(64 * KB)
  const y = pool.take(64 * KB)
  t.not(x.buffer, y.buffer)
})

t.test('the spares are dropped once none has been given back for idleMs', async t => {
  const pool = new BufferPool(4, 256 * KB, 64 * KB, 50)
  const a = pool.take(64 * KB)
  pool.give(a)
  t.equal(pool.spareCount, 1)
  await new Promise(resolve => setTimeout(resolve, 20))
  pool.give(pool.take(64 * KB)) // a give-back puts the drop off
  await new Promise(resolve => setTimeout(resolve, 40))
  t.equal(pool.spareCount, 1, 'still there 60 ms after the first give-back, 40 ms after the last')
  await new Promise(resolve => setTimeout(resolve, 80))
  t.equal(pool.spareCount, 0, 'dropped')
  t.not(pool.take(64 * KB).buffer, a.buffer, 'a new buffer afterwards')
})
