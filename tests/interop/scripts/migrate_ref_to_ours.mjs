// Account migration, reference PDS → ours, driven with @atproto/api as a migration tool would (the
// official flow: getServiceAuth, createAccount with the DID, getRepo → importRepo, blobs, preferences,
// getRecommendedDidCredentials, requestPlcOperationSignature → signPlcOperation on the old host,
// submitPlcOperation and activateAccount on the new one, deactivateAccount on the old one).
// Run by crates/pds/tests/interop_migration.rs with Node 22:
//
//   node scripts/migrate_ref_to_ours.mjs --plc <PLC url> --ours <our url> --ours-public <our public url>
//        --work <dir> --handle <handle on ours> --password <password on ours>
//
// Starts a reference PDS (old host) in this process against the shared PLC directory, creates an account
// with 500 posts (10 with an image), a profile and preferences, migrates it to our server and checks the
// issue's "done when" list, including our firehose (#identity, #account, #sync; the #sync commit verifies
// against the DID's new key). Prints `ok <step>` per step, `MIGRATED <did>`, and `N passed, 0 failed`.

import assert from 'node:assert/strict'
import path from 'node:path'
import { AtpAgent } from '@atproto/api'
import {
  checkMigrated,
  checkSyncEvent,
  fillAccount,
  log,
  migrate,
  plcAudit,
  readPlcToken,
  requireArgs,
  snapshotFilled,
  startRefPds,
  step,
  summary,
  watchFirehose,
} from './migrate_lib.mjs'

const args = requireArgs(process.argv.slice(2), ['plc', 'ours', 'ours-public', 'work', 'handle', 'password'])

const old = await step('start the reference PDS (old host)', () =>
  startRefPds({ plcUrl: args.plc, dataDir: path.join(args.work, 'ref-old'), handleDomain: '.refold.test' }),
)
const oldAgent = new AtpAgent({ service: old.url })
const did = await step('an account with 500 posts, 10 blobs, a profile and preferences', async () => {
  await oldAgent.createAccount({ handle: 'alice.refold.test', email: 'alice@old.example.com', password: 'old-password' })
  await fillAccount(oldAgent, { posts: 500, blobs: 10 })
  return oldAgent.session.did
})
const before = await snapshotFilled('snapshot on the old host', oldAgent, did)
const auditBefore = await plcAudit(args.plc, did)
const ours = watchFirehose(args.ours, args.plc, did)

const moved = await step('migrate with the official flow', () =>
  migrate({
    oldAgent,
    newService: args.ours,
    handle: args.handle,
    email: 'alice@new.example.com',
    password: args.password,
    plcToken: (d) => readPlcToken(old.accountDb, d),
    log,
  }),
)
await step('our checkAccountStatus before activation', async () => {
  const s = moved.statusBeforeActivation
  assert.equal(s.activated, false)
  assert.equal(s.validDid, false)
  assert.equal(s.indexedRecords, 501)
  assert.equal(s.expectedBlobs, 10)
  assert.equal(s.importedBlobs, 10)
  assert.ok(s.privateStateValues >= 3, `privateStateValues ${s.privateStateValues}`)
  assert.equal(moved.missingAfterImport.length, 10)
})
await checkMigrated({
  did,
  before,
  plcUrl: args.plc,
  auditBefore,
  oldAgent,
  newAgent: moved.newAgent,
  newPublicUrl: args['ours-public'],
  creds: moved.creds,
})
await step('our firehose: #identity, #account (active) and #sync, verified with the new key', async () => {
  await ours.waitFor('#sync', (evts) => evts.some((e) => e.event === 'sync'))
  const kinds = ours.events.map((e) => e.event)
  assert.ok(kinds.includes('identity'), kinds.join(','))
  const account = ours.events.find((e) => e.event === 'account')
  assert.ok(account, kinds.join(','))
  assert.equal(account.active, true)
  assert.ok(kinds.lastIndexOf('identity') < kinds.indexOf('sync'), kinds.join(','))
  assert.ok(kinds.indexOf('account') < kinds.indexOf('sync'), kinds.join(','))
  assert.ok(!kinds.includes('create'), `no #commit for an import: ${kinds.join(',')}`)
  const sync = ours.events.find((e) => e.event === 'sync')
  await checkSyncEvent(sync, did, moved.creds.verificationMethods.atproto, before.data)
  const latest = (await moved.newAgent.com.atproto.sync.getLatestCommit({ did })).data
  assert.equal(latest.cid, sync.cid.toString())
  assert.equal(latest.rev, sync.rev)
})
await step('the migrated account writes on our host', async () => {
  const res = await moved.newAgent.com.atproto.repo.createRecord({
    repo: did,
    collection: 'app.bsky.feed.post',
    record: { $type: 'app.bsky.feed.post', text: 'hello from the new host', createdAt: new Date().toISOString() },
  })
  assert.ok(res.data.uri.startsWith(`at://${did}/`))
  await moved.newAgent.com.atproto.repo.deleteRecord({
    repo: did,
    collection: 'app.bsky.feed.post',
    rkey: res.data.uri.split('/').at(-1),
  })
})
await ours.stop()
await old.stop()
console.log(`MIGRATED ${did}`)
summary()
process.exit(0)
