// Our PDS driven by the official client, @atproto/api (pinned in package.json). Run by
// crates/pds/tests/interop_api.rs with Node 22 against the real `pds serve` binary:
//
//   node pds_client.mjs <pds base url> [<pds binary> <data dir>]
//
// Account creation, login, a post with an image blob and a link facet, like, follow, record
// reads, a stale swapRecord (must fail with InvalidSwap), delete, session refresh and resume, a
// second session, an app-password login and a handle update. With the `pds` binary and the
// server's data directory (codes are only logged without SMTP; `pds account token` reads them),
// also the email sign-in factor: login without the code fails with AuthFactorTokenRequired, login
// with `authFactorToken` works; an expired access token (minted with the server's secret) is
// refreshed by the client on its own. Prints `ok <step>` per step and a final `N passed, 0 failed`;
// exits 1 on the first failure.

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { AtpAgent, ComAtprotoServerCreateSession, CredentialSession, RichText } from '@atproto/api'
import { finish, rejection, step } from './steps.mjs'

const [service, pdsBinary, dataDir] = process.argv.slice(2)
if (!service) {
  console.error('usage: node pds_client.mjs <pds base url> [<pds binary> <data dir>]')
  process.exit(2)
}

const HANDLE = 'alice.test'
const PASSWORD = 'hunter22-alice'

// The smallest valid PNG: one transparent pixel.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==',
  'base64',
)


const agent = new AtpAgent({ service })
let did
let post
let like
let follow
let blobCid

await step('describeServer', async () => {
  const res = await agent.com.atproto.server.describeServer()
  assert.ok(res.data.did.startsWith('did:'), res.data.did)
  assert.ok(res.data.availableUserDomains.includes('.test'))
})

await step('createAccount', async () => {
  const res = await agent.createAccount({ handle: HANDLE, email: 'alice@example.com', password: PASSWORD })
  did = res.data.did
  assert.match(did, /^did:plc:[a-z2-7]{24}$/)
  assert.equal(res.data.handle, HANDLE)
  assert.ok(agent.hasSession)
  assert.equal(agent.session.did, did)
})

await step('login', async () => {
  const res = await agent.login({ identifier: HANDLE, password: PASSWORD })
  assert.equal(res.data.did, did)
  assert.equal(res.data.handle, HANDLE)
  const me = await agent.com.atproto.server.getSession()
  assert.equal(me.data.did, did)
  assert.equal(me.data.handle, HANDLE)
})

await step('login with a wrong password fails', async () => {
  const other = new AtpAgent({ service })
  const e = await rejection(other.login({ identifier: HANDLE, password: 'wrong' }))
  assert.equal(e.status, 401, String(e))
  assert.equal(e.error, 'AuthenticationRequired')
})

await step('post with image and link facet', async () => {
  const blob = await agent.uploadBlob(PNG, { encoding: 'image/png' })
  assert.equal(blob.data.blob.mimeType, 'image/png')
  assert.equal(blob.data.blob.size, PNG.length)

  const rt = new RichText({ text: 'hello from @atproto/api, see https://example.com/page' })
  rt.detectFacetsWithoutResolution()
  assert.equal(rt.facets?.length, 1)
  assert.equal(rt.facets[0].features[0].$type, 'app.bsky.richtext.facet#link')

  post = await agent.post({
    text: rt.text,
    facets: rt.facets,
    embed: {
      $type: 'app.bsky.embed.images',
      images: [{ alt: 'a pixel', image: blob.data.blob, aspectRatio: { width: 1, height: 1 } }],
    },
    createdAt: new Date().toISOString(),
  })
  assert.ok(post.uri.startsWith(`at://${did}/app.bsky.feed.post/`), post.uri)

  // The blob is now served by sync.getBlob, byte for byte.
  blobCid = blob.data.blob.ref.toString()
  const got = await agent.com.atproto.sync.getBlob({ did, cid: blobCid })
  assert.deepEqual(Buffer.from(got.data), PNG)
})

await step('getRecord returns the post', async () => {
  const rkey = post.uri.split('/').pop()
  const res = await agent.com.atproto.repo.getRecord({ repo: did, collection: 'app.bsky.feed.post', rkey })
  assert.equal(res.data.uri, post.uri)
  assert.equal(res.data.cid, post.cid)
  assert.equal(res.data.value.facets[0].features[0].uri, 'https://example.com/page')
  assert.equal(res.data.value.facets[0].index.byteStart, 'hello from @atproto/api, see '.length)
  assert.equal(res.data.value.embed.images[0].image.ref.toString(), blobCid)
  assert.equal(res.data.value.embed.images[0].image.mimeType, 'image/png')
  // The getter by handle works too.
  const byHandle = await agent.com.atproto.repo.getRecord({ repo: HANDLE, collection: 'app.bsky.feed.post', rkey })
  assert.equal(byHandle.data.cid, post.cid)
})

await step('like and follow', async () => {
  like = await agent.like(post.uri, post.cid)
  assert.ok(like.uri.startsWith(`at://${did}/app.bsky.feed.like/`), like.uri)
  follow = await agent.follow('did:plc:ewvi7nxzyoun6zhxrhs64oiz')
  assert.ok(follow.uri.startsWith(`at://${did}/app.bsky.graph.follow/`), follow.uri)
})

await step('listRecords and describeRepo', async () => {
  const posts = await agent.com.atproto.repo.listRecords({ repo: did, collection: 'app.bsky.feed.post' })
  assert.deepEqual(
    posts.data.records.map((r) => [r.uri, r.cid]),
    [[post.uri, post.cid]],
  )
  const likes = await agent.com.atproto.repo.listRecords({ repo: HANDLE, collection: 'app.bsky.feed.like' })
  assert.equal(likes.data.records.length, 1)
  assert.equal(likes.data.records[0].value.subject.uri, post.uri)
  assert.equal(likes.data.records[0].value.subject.cid, post.cid)
  const repo = await agent.com.atproto.repo.describeRepo({ repo: did })
  assert.equal(repo.data.handle, HANDLE)
  assert.equal(repo.data.did, did)
  assert.deepEqual(
    [...repo.data.collections].sort(),
    ['app.bsky.feed.like', 'app.bsky.feed.post', 'app.bsky.graph.follow'],
  )
})

await step('putRecord with a stale swapRecord fails with InvalidSwap', async () => {
  const rkey = post.uri.split('/').pop()
  const record = { $type: 'app.bsky.feed.post', text: 'edited', createdAt: new Date().toISOString() }
  const updated = await agent.com.atproto.repo.putRecord({
    repo: did,
    collection: 'app.bsky.feed.post',
    rkey,
    record,
    swapRecord: post.cid,
  })
  assert.notEqual(updated.data.cid, post.cid)
  // post.cid is stale now.
  const e = await rejection(
    agent.com.atproto.repo.putRecord({
      repo: did,
      collection: 'app.bsky.feed.post',
      rkey,
      record: { ...record, text: 'lost update' },
      swapRecord: post.cid,
    }),
  )
  assert.equal(e.error, 'InvalidSwap', String(e))
  assert.equal(e.status, 400)
  const now = await agent.com.atproto.repo.getRecord({ repo: did, collection: 'app.bsky.feed.post', rkey })
  assert.equal(now.data.cid, updated.data.cid)
  assert.equal(now.data.value.text, 'edited')
  post = { uri: post.uri, cid: updated.data.cid }
})

await step('deleteRecord', async () => {
  const rkey = like.uri.split('/').pop()
  await agent.com.atproto.repo.deleteRecord({ repo: did, collection: 'app.bsky.feed.like', rkey })
  const e = await rejection(agent.com.atproto.repo.getRecord({ repo: did, collection: 'app.bsky.feed.like', rkey }))
  assert.equal(e.error, 'RecordNotFound', String(e))
  const likes = await agent.com.atproto.repo.listRecords({ repo: did, collection: 'app.bsky.feed.like' })
  assert.equal(likes.data.records.length, 0)
})

let saved
await step('refreshSession', async () => {
  const before = { ...agent.session }
  await agent.sessionManager.refreshSession()
  const after = agent.session
  assert.equal(after.did, did)
  assert.equal(after.handle, HANDLE)
  assert.notEqual(after.refreshJwt, before.refreshJwt)
  // The old refresh token is spent (the reference allows a short grace period, so only check
  // that the new pair works).
  const me = await agent.com.atproto.server.getSession()
  assert.equal(me.data.did, did)
  saved = { ...after }
})

await step('resumeSession in a new agent', async () => {
  const session = new CredentialSession(new URL(service))
  const resumed = new AtpAgent(session)
  await resumed.resumeSession(saved)
  assert.equal(resumed.session.did, did)
  assert.equal(resumed.session.handle, HANDLE)
  const res = await resumed.com.atproto.repo.createRecord({
    repo: did,
    collection: 'app.bsky.feed.post',
    record: { $type: 'app.bsky.feed.post', text: 'from a resumed session', createdAt: new Date().toISOString() },
  })
  assert.ok(res.data.uri.startsWith(`at://${did}/`))
  saved = resumed.session
})

await step('a second session alongside the first', async () => {
  const second = new AtpAgent({ service })
  await second.login({ identifier: did, password: PASSWORD })
  // Access tokens carry no id (two issued in the same second may be equal); refresh tokens do.
  assert.notEqual(second.session.refreshJwt, saved.refreshJwt)
  const a = await second.com.atproto.server.getSession()
  assert.equal(a.data.did, did)
  // Logging the second out leaves the first working.
  await second.logout()
  const b = await agent.com.atproto.server.getSession()
  assert.equal(b.data.did, did)
})

await step('app password login', async () => {
  const created = await agent.com.atproto.server.createAppPassword({ name: 'interop' })
  const appAgent = new AtpAgent({ service })
  await appAgent.login({ identifier: HANDLE, password: created.data.password })
  assert.equal(appAgent.session.did, did)
  const res = await appAgent.com.atproto.repo.createRecord({
    repo: did,
    collection: 'app.bsky.feed.post',
    record: { $type: 'app.bsky.feed.post', text: 'via app password', createdAt: new Date().toISOString() },
  })
  assert.ok(res.data.uri.startsWith(`at://${did}/`))
})

// The account's live email code for `purpose`, read by the operator CLI.
function emailCode(purpose) {
  return execFileSync(pdsBinary, ['account', 'token', did, purpose, '--data-dir', dataDir], {
    encoding: 'utf8',
  }).trim()
}

if (pdsBinary && dataDir) {
  await step('email sign-in factor with authFactorToken', async () => {
    await agent.com.atproto.server.requestEmailConfirmation()
    await agent.com.atproto.server.confirmEmail({ email: 'alice@example.com', token: emailCode('confirm_email') })
    await agent.com.atproto.server.updateEmail({ email: 'alice@example.com', emailAuthFactor: true })
    const me = await agent.com.atproto.server.getSession()
    assert.equal(me.data.emailAuthFactor, true)

    const other = new AtpAgent({ service })
    const e = await rejection(other.login({ identifier: HANDLE, password: PASSWORD }))
    assert.ok(e instanceof ComAtprotoServerCreateSession.AuthFactorTokenRequiredError, String(e))
    assert.equal(e.status, 401)
    assert.ok(!other.hasSession)
    const wrong = await rejection(other.login({ identifier: HANDLE, password: PASSWORD, authFactorToken: 'AAAAA-AAAAA' }))
    assert.equal(wrong.error, 'InvalidToken', String(wrong))

    await other.login({ identifier: HANDLE, password: PASSWORD, authFactorToken: emailCode('auth_factor') })
    assert.equal(other.session.did, did)
    assert.equal(other.session.emailConfirmed, true)
    assert.equal(other.session.emailAuthFactor, true)
    const again = await other.com.atproto.server.getSession()
    assert.equal(again.data.emailAuthFactor, true)

    // Off again, in two calls (the second with the mailed update_email code).
    const pending = await rejection(
      agent.com.atproto.server.updateEmail({ email: 'alice@example.com', emailAuthFactor: false }),
    )
    assert.equal(pending.error, 'TokenRequired', String(pending))
    await agent.com.atproto.server.updateEmail({
      email: 'alice@example.com',
      emailAuthFactor: false,
      token: emailCode('update_email'),
    })
    const plain = new AtpAgent({ service })
    await plain.login({ identifier: HANDLE, password: PASSWORD })
    assert.equal(plain.session.emailAuthFactor, false)
  })

  await step('an expired access token is refreshed by the client on its own', async () => {
    // Mint what the server would have issued two hours ago, with its own secret.
    const secrets = JSON.parse(readFileSync(join(dataDir, 'secrets.json'), 'utf8'))
    const [header, payload] = agent.session.accessJwt.split('.')
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
    claims.exp = Math.floor(Date.now() / 1000) - 60
    const body = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`
    const sig = createHmac('sha256', secrets.jwtSecret).update(body).digest('base64url')
    const expired = `${body}.${sig}`
    const raw = await fetch(`${service}/xrpc/com.atproto.server.getSession`, {
      headers: { authorization: `Bearer ${expired}` },
    })
    assert.equal(raw.status, 400)
    assert.equal((await raw.json()).error, 'ExpiredToken')
    // The client sees ExpiredToken, refreshes, and retries: the call succeeds.
    const before = agent.session.refreshJwt
    agent.sessionManager.session = { ...agent.session, accessJwt: expired }
    const me = await agent.com.atproto.server.getSession()
    assert.equal(me.data.did, did)
    assert.notEqual(agent.session.accessJwt, expired)
    assert.notEqual(agent.session.refreshJwt, before)
  })
}

await step('handle update', async () => {
  await agent.com.atproto.identity.updateHandle({ handle: 'alice2.test' })
  const resolved = await agent.com.atproto.identity.resolveHandle({ handle: 'alice2.test' })
  assert.equal(resolved.data.did, did)
  const repo = await agent.com.atproto.repo.describeRepo({ repo: did })
  assert.equal(repo.data.handle, 'alice2.test')
})

finish()
