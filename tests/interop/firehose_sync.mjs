// Our firehose read by the official consumer, @atproto/sync's Firehose (pinned in package.json),
// with verification ON: every #commit's signature is checked against the signing key resolved
// from our embedded PLC directory, and every op against the commit's MST. Run by
// crates/pds/tests/interop_firehose.rs with Node 22 against the real `pds serve` binary:
//
//   node firehose_sync.mjs <pds base url> <plc directory url>
//
// Subscribes, then creates an account and creates, updates and deletes records through
// @atproto/api; every event must arrive, in order (strictly increasing seq), with every op. Then a
// handle change (#identity), deactivation (#account inactive; writes refused, no #commit) and
// reactivation (#identity, #account, #sync, then commits again).
// Any Firehose error (validation, parse, subscription, verification) fails the run. Prints
// `ok <step>` per step and a final `N passed, 0 failed`; exits 1 on the first failure.

import assert from 'node:assert/strict'
import { AtpAgent } from '@atproto/api'
import { IdResolver } from '@atproto/identity'
import { Firehose } from '@atproto/sync'

const [service, plcUrl] = process.argv.slice(2)
if (!service || !plcUrl) {
  console.error('usage: node firehose_sync.mjs <pds base url> <plc directory url>')
  process.exit(2)
}

let passed = 0
function fail(what, e) {
  let detail = `${e?.stack ?? e}`
  for (let c = e?.cause; c; c = c.cause) detail += `\ncaused by: ${c?.stack ?? c}`
  if (e?.event) detail += `\nevent: ${JSON.stringify(e.event, (k, v) => (v instanceof Uint8Array ? `<${v.length} bytes>` : v))}`
  console.log(`FAILED ${what}: ${detail}`)
  console.log(`${passed} passed, 1 failed`)
  process.exit(1)
}
async function step(name, fn) {
  try {
    await fn()
  } catch (e) {
    fail(name, e)
  }
  passed++
  console.log(`ok ${name}`)
}

const events = []
const firehose = new Firehose({
  // The default fetch is SSRF-protected (https only, no loopback); our directory is a local
  // http server, so use the plain global fetch.
  idResolver: new IdResolver({ plcUrl, fetch: globalThis.fetch }),
  service: service.replace(/^http/, 'ws'),
  unauthenticatedHandles: true,
  handleEvent: (evt) => {
    events.push(evt)
  },
  onError: (err) => fail('firehose', err),
})
firehose.start()

async function waitFor(what, pred) {
  const deadline = Date.now() + 15000
  while (!pred()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(summary())}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
}

function summary() {
  return events.map((e) =>
    e.event === 'create' || e.event === 'update' || e.event === 'delete'
      ? `${e.seq} ${e.event} ${e.collection}/${e.rkey}`
      : `${e.seq} ${e.event}`,
  )
}

// Give the subscription a moment to connect (it is live only: no cursor).
await new Promise((r) => setTimeout(r, 500))

const agent = new AtpAgent({ service })
let did
const post = (text) => ({
  $type: 'app.bsky.feed.post',
  text,
  createdAt: new Date().toISOString(),
})
const expected = []

await step('createAccount', async () => {
  const res = await agent.createAccount({
    handle: 'carol.test',
    email: 'carol@example.com',
    password: 'hunter22-carol',
  })
  did = res.data.did
})

await step('create, update and delete records', async () => {
  const repo = did
  const collection = 'app.bsky.feed.post'
  for (const rkey of ['p1', 'p2', 'p3']) {
    await agent.com.atproto.repo.createRecord({ repo, collection, rkey, record: post(rkey) })
    expected.push(`create ${collection}/${rkey}`)
  }
  await agent.com.atproto.repo.putRecord({ repo, collection, rkey: 'p2', record: post('edited') })
  expected.push(`update ${collection}/p2`)
  await agent.com.atproto.repo.deleteRecord({ repo, collection, rkey: 'p1' })
  expected.push(`delete ${collection}/p1`)
  await agent.com.atproto.repo.applyWrites({
    repo,
    writes: [
      { $type: 'com.atproto.repo.applyWrites#create', collection, rkey: 'p4', value: post('p4') },
      { $type: 'com.atproto.repo.applyWrites#update', collection, rkey: 'p3', value: post('p3!') },
      { $type: 'com.atproto.repo.applyWrites#delete', collection, rkey: 'p2' },
    ],
  })
  expected.push(`create ${collection}/p4`, `update ${collection}/p3`, `delete ${collection}/p2`)
})

const ops = () =>
  events
    .filter((e) => ['create', 'update', 'delete'].includes(e.event))
    .map((e) => `${e.event} ${e.collection}/${e.rkey}`)

await step('every op arrives, in order, verified', async () => {
  await waitFor('all ops', () => ops().length >= expected.length)
  await new Promise((r) => setTimeout(r, 300))
  assert.deepEqual(ops(), expected)
})

await step('seq strictly increases', async () => {
  for (let i = 1; i < events.length; i++) {
    assert.ok(events[i].seq >= events[i - 1].seq, `seq ${events[i].seq} after ${events[i - 1].seq}`)
  }
  const commitSeqs = [...new Set(events.filter((e) => e.commit).map((e) => e.seq))]
  assert.equal(commitSeqs.length, 6, `six commits: ${JSON.stringify(summary())}`)
})

await step('identity and account events for the new account', async () => {
  const identity = events.find((e) => e.event === 'identity')
  assert.ok(identity, JSON.stringify(summary()))
  assert.equal(identity.did, did)
  const account = events.find((e) => e.event === 'account')
  assert.ok(account, JSON.stringify(summary()))
  assert.equal(account.did, did)
  assert.equal(account.active, true)
})

await step('created records carry their content', async () => {
  const p4 = events.find((e) => e.event === 'create' && e.rkey === 'p4')
  assert.equal(p4.record.text, 'p4')
  assert.equal(p4.did, did)
  assert.ok(p4.cid)
  assert.equal(p4.uri.toString(), `at://${did}/app.bsky.feed.post/p4`)
})

await step('handle change emits #identity', async () => {
  await agent.com.atproto.identity.updateHandle({ handle: 'carol2.test' })
  // With unauthenticatedHandles the consumer leaves `handle` unset, but it resolves the DID
  // document from our PLC directory: it must already name the new handle.
  await waitFor('identity with the new handle', () =>
    events.some(
      (e) =>
        e.event === 'identity' &&
        e.did === did &&
        (e.didDocument?.alsoKnownAs ?? []).includes('at://carol2.test'),
    ),
  )
})

await step('deactivation emits #account inactive, and no #commit follows', async () => {
  await agent.com.atproto.server.deactivateAccount({})
  await waitFor('account inactive', () =>
    events.some((e) => e.event === 'account' && e.did === did && e.active === false),
  )
  const before = ops().length
  await assert.rejects(
    agent.com.atproto.repo.createRecord({ repo: did, collection: 'app.bsky.feed.post', record: post('no') }),
  )
  await new Promise((r) => setTimeout(r, 300))
  assert.equal(ops().length, before)
})

await step('reactivation emits #identity, #account active and #sync, then commits resume', async () => {
  const from = events.length
  await agent.com.atproto.server.activateAccount()
  await waitFor('account active again', () =>
    events.slice(from).some((e) => e.event === 'account' && e.active === true),
  )
  await waitFor('sync event', () => events.slice(from).some((e) => e.event === 'sync' && e.did === did))
  const kinds = events.slice(from).map((e) => e.event)
  assert.ok(kinds.indexOf('identity') < kinds.indexOf('account'), JSON.stringify(kinds))
  assert.ok(kinds.indexOf('account') < kinds.indexOf('sync'), JSON.stringify(kinds))
  await agent.com.atproto.repo.createRecord({
    repo: did,
    collection: 'app.bsky.feed.post',
    rkey: 'p5',
    record: post('back'),
  })
  await waitFor('the post after reactivation', () => ops().includes('create app.bsky.feed.post/p5'))
})

await firehose.destroy()
console.log(`${passed} passed, 0 failed`)
process.exit(0)
