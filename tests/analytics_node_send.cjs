// Sends the five Segment calls through @segment/analytics-node (Segment's own Node.js library) to the
// Tracking API at argv[2] with the write key argv[3], two events per batch; exits 1 on any error.
const { Analytics } = require('@segment/analytics-node')

const [host, writeKey] = process.argv.slice(2)
const analytics = new Analytics({ writeKey, host, flushAt: 2, flushInterval: 200, maxRetries: 2 })
const errors = []
analytics.on('error', (error) => errors.push(String(error.reason ?? error.message ?? error.code ?? error)))

analytics.identify({ userId: 'nod', anonymousId: 'anon-n', traits: { email: 'nod@example.com', plan: 'pro' } })
analytics.track({ userId: 'nod', event: 'Order Completed', properties: { revenue: 12.5 } })
analytics.page({ userId: 'nod', category: 'Docs', name: 'Install', properties: { path: '/install' } })
analytics.group({ userId: 'nod', groupId: 'acme', traits: { name: 'Acme Inc' } })
analytics.alias({ userId: 'nod', previousId: 'anon-old' })
analytics.closeAndFlush({ timeout: 30000 }).then(() => {
  if (errors.length) {
    console.error(errors.join('\n'))
    process.exit(1)
  }
})
