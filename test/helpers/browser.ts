/**
 * Headless Chromium for the Swagger UI tests, as this machine allows it (no network but loopback, no sandbox as
 * root), with a page that records what the browser did besides talking to the gateway: requests to any other
 * origin, failed requests, console errors and page errors. Closed at the test's end.
 */
import { chromium, type Page, type Request } from 'playwright-core'
import type { Test } from 'tap'

export interface WatchedPage {
  page: Page
  /** Requests to any origin but the gateway's (data: and blob: URLs aside). */
  offGateway: string[]
  /** Requests that failed, as `METHOD url: error`. */
  failed: string[]
  /** Console errors and uncaught page errors. */
  errors: string[]
}

export async function openPage (t: Test, executablePath: string, gatewayUrl: string, timeoutMs: number): Promise<WatchedPage> {
  const browser = await chromium.launch({
    executablePath,
    timeout: timeoutMs,
    args: [
      '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-default-apps',
      '--disable-domain-reliability', '--disable-client-side-phishing-detection', '--no-first-run',
      '--no-default-browser-check',
      // Belt and braces: no host but loopback even resolves, whatever the page or the browser tries.
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
  })
  t.teardown(() => browser.close())
  const page = await browser.newPage({ viewport: { width: 1280, height: 1600 } })
  page.setDefaultTimeout(timeoutMs)
  const origin = new URL(gatewayUrl).origin
  const watched: WatchedPage = { page, offGateway: [], failed: [], errors: [] }
  const isLocal = (url: string): boolean => url.startsWith('data:') || url.startsWith('blob:') || new URL(url).origin === origin
  page.on('request', (req: Request) => { if (!isLocal(req.url())) watched.offGateway.push(req.url()) })
  page.on('requestfailed', (req: Request) => { watched.failed.push(`${req.method()} ${req.url()}: ${req.failure()?.errorText}`) })
  page.on('console', msg => { if (msg.type() === 'error') watched.errors.push(msg.text()) })
  page.on('pageerror', err => { watched.errors.push(`${err.name}: ${err.message}`) })
  return watched
}

/**
 * Opens Swagger UI at `/docs` and authorizes with a client key (the document's one http bearer scheme: its dialog
 * takes the raw key). Returns the status `/docs` was served with.
 */
export async function authorizeInSwaggerUi (page: Page, gatewayUrl: string, key: string): Promise<number | undefined> {
  const opened = await page.goto(`${gatewayUrl}/docs`)
  await page.locator('.swagger-ui .info .title').filter({ hasText: 'bulk-gateway' }).waitFor()
  await page.locator('.auth-wrapper .btn.authorize').click()
  const dialog = page.locator('.dialog-ux .modal-ux')
  await dialog.locator('.auth-container input').first().fill(key)
  await dialog.locator('.auth-btn-wrapper .btn.authorize').click()
  await dialog.locator('.auth-btn-wrapper .btn-done').click()
  await dialog.waitFor({ state: 'detached' })
  return opened?.status()
}
