/** The LISTEN connection stops promptly whatever it is doing when asked, including while it is still connecting. */
import t from 'tap'
import { pino } from 'pino'
import { JobListener } from '../../src/engine/notifications.js'
import { testDatabase } from '../helpers/database.js'

t.test('stop() during connect, and after, returns promptly', async t => {
  const url = await testDatabase(t)
  const within = (ms: number, p: Promise<void>) => Promise.race([p.then(() => true), new Promise<boolean>(resolve => setTimeout(resolve, ms, false))])
  for (let i = 0; i < 5; i++) {
    const listener = new JobListener(url, () => {}, pino({ level: 'silent' }))
    listener.start()
    t.ok(await within(5000, listener.stop()), `stopped while connecting (${i + 1})`)
  }
  const seen: string[] = []
  const listener = new JobListener(url, n => seen.push(n.kind), pino({ level: 'silent' }))
  listener.start()
  while (seen.length === 0) await new Promise(resolve => setTimeout(resolve, 20))
  t.ok(await within(5000, listener.stop()), 'stopped while listening')
})
