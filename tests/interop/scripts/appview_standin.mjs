// A stand-in AppView (and report and chat service) built with @atproto/xrpc-server, and the official
// client (@atproto/api) calling it through our PDS. Run by crates/pds/tests/interop_proxy.rs:
//
//   node scripts/appview_standin.mjs <pds url> <plc url> <stand-in port> <app view did> <report service did>
//
// The PDS runs with PDS_BSKY_APP_VIEW_URL/_DID and PDS_REPORT_SERVICE_URL/_DID pointing here. Every
// service-auth token the stand-in receives is checked with xrpc-server's own verifyJwt, the issuer's key
// resolved through our PLC directory (@atproto/identity's IdResolver): audience (the app view, the
// report service, the chat service, or for getFeed the feed generator) and method (lxm) included.
// Also: read-after-write (the stand-in answers with an Atproto-Repo-Rev older than the account's newest
// records), upstream errors, unreachable and unknown services, and refused tokens (wrong audience,
// wrong method, expired, tampered).
//
// Prints `ok <step>` per step and a final `N passed, 0 failed`; exits 1 on the first failure.

import assert from 'node:assert/strict'
import http from 'node:http'
import { createRequire } from 'node:module'
import { AtpAgent, schemas } from '@atproto/api'
import { Secp256k1Keypair } from '@atproto/crypto'
import { IdResolver } from '@atproto/identity'
import { AuthRequiredError, InvalidRequestError, createServer, verifyJwt } from '@atproto/xrpc-server'
import { finish, rejection, step } from '../steps.mjs'

const require = createRequire(import.meta.url)
const plc = require('@did-plc/lib')

const [pdsUrl, plcUrl, portArg, APPVIEW_DID, REPORT_DID] = process.argv.slice(2)
if (!REPORT_DID || !plcUrl.startsWith('http://127.0.0.1:')) {
  console.error('usage: node scripts/appview_standin.mjs <pds url> <plc url> <port> <app view did> <report did>')
  process.exit(2)
}
const PORT = Number(portArg)
const STANDIN_URL = `http://127.0.0.1:${PORT}`
const FEEDGEN_DID = 'did:web:feedgen.test'
const OTHER_DID = 'did:plc:otheruseraaaaaaaaaaaaaaa'


// ---------------------------------------------------------------------------------------------
// The stand-in services.

// IdResolver's default fetch refuses plain http and loopback (its SSRF guard), as a production
// service's should; the directory here is on 127.0.0.1, so give it the plain fetch.
const idResolver = new IdResolver({ plcUrl, fetch: globalThis.fetch })
const getSigningKey = (iss, forceRefresh) => idResolver.did.resolveAtprotoKey(iss.split('#')[0], forceRefresh)

// What the stand-in saw, and what it answers (set by the steps below).
const seen = [] // { lxm, aud, payload, token, headers }
const hits = new Map() // path -> count
const view = { rev: undefined, posts: [], profileName: 'Alice (app view)', chatDid: undefined }

const verifier = (audience, lxm) => async ({ req }) => {
  const header = req.headers.authorization ?? ''
  if (!header.startsWith('Bearer ')) throw new AuthRequiredError('no service token', 'AuthMissing')
  const token = header.slice('Bearer '.length)
  const aud = typeof audience === 'function' ? audience() : audience
  const payload = await verifyJwt(token, aud, lxm, getSigningKey).catch((e) => {
    console.error(`stand-in refused a token for ${lxm}: ${e?.stack ?? e}`)
    throw e
  })
  seen.push({ lxm, aud, payload, token, headers: { ...req.headers } })
  return { credentials: { iss: payload.iss } }
}

const json = (body, headers) => ({ encoding: 'application/json', body, headers })
const revHeaders = () => (view.rev ? { 'atproto-repo-rev': view.rev } : undefined)

const server = createServer(schemas, { validateResponse: false })
server.method('app.bsky.feed.getTimeline', {
  auth: verifier(APPVIEW_DID, 'app.bsky.feed.getTimeline'),
  handler: () => json({ feed: view.timeline ?? [] }, revHeaders()),
})
server.method('app.bsky.feed.getAuthorFeed', {
  auth: verifier(APPVIEW_DID, 'app.bsky.feed.getAuthorFeed'),
  handler: () => json({ feed: view.posts.map((post) => ({ post })) }, revHeaders()),
})
server.method('app.bsky.actor.getProfile', {
  auth: verifier(APPVIEW_DID, 'app.bsky.actor.getProfile'),
  handler: ({ auth }) =>
    json(
      { did: auth.credentials.iss, handle: 'alice.test', displayName: view.profileName, followersCount: 7 },
      revHeaders(),
    ),
})
server.method('app.bsky.feed.getPostThread', {
  auth: verifier(APPVIEW_DID, 'app.bsky.feed.getPostThread'),
  handler: ({ res }) => {
    if (view.rev) res.setHeader('atproto-repo-rev', view.rev)
    throw new InvalidRequestError('Post not found', 'NotFound')
  },
})
server.method('app.bsky.feed.getFeed', {
  // The AppView passes this token on to the feed generator: its audience is the generator.
  auth: verifier(FEEDGEN_DID, 'app.bsky.feed.getFeedSkeleton'),
  handler: () => json({ feed: [] }),
})
server.method('com.atproto.repo.getRecord', {
  // Unauthenticated, as the AppView's: here it reads the record from the PDS that hosts it.
  handler: async ({ params }) => {
    const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined))
    const res = await fetch(`${pdsUrl}/xrpc/com.atproto.repo.getRecord?${q}`)
    if (!res.ok) throw new InvalidRequestError('Could not locate record', 'RecordNotFound')
    return json(await res.json())
  },
})
server.method('com.atproto.moderation.createReport', {
  auth: verifier(REPORT_DID, 'com.atproto.moderation.createReport'),
  handler: ({ auth, input }) =>
    json({ id: 42, ...input.body, reportedBy: auth.credentials.iss, createdAt: new Date().toISOString() }),
})
server.method('chat.bsky.convo.listConvos', {
  auth: verifier(() => view.chatDid, 'chat.bsky.convo.listConvos'),
  handler: () => json({ convos: [] }),
})
server.method('chat.bsky.convo.sendMessage', {
  auth: verifier(() => view.chatDid, 'chat.bsky.convo.sendMessage'),
  handler: ({ auth, input }) =>
    json({
      id: 'm1',
      rev: '2222222222222',
      text: input.body.message.text,
      sender: { did: auth.credentials.iss },
      sentAt: new Date().toISOString(),
    }),
})
server.method('app.bsky.unspecced.getConfig', {
  auth: verifier(APPVIEW_DID, 'app.bsky.unspecced.getConfig'),
  handler: () => {
    throw new InvalidRequestError('config is switched off', 'ConfigOff')
  },
})
server.method('app.bsky.unspecced.getPopularFeedGenerators', {
  auth: verifier(APPVIEW_DID, 'app.bsky.unspecced.getPopularFeedGenerators'),
  handler: () => {
    throw new Error('boom')
  },
})

const outer = (req, res) => {
  const path = req.url.split('?')[0]
  hits.set(path, (hits.get(path) ?? 0) + 1)
  server.router(req, res)
}
const httpServer = http.createServer(outer)
await new Promise((resolve) => httpServer.listen(PORT, '127.0.0.1', resolve))

// Registers a did:plc in our directory whose document names a service at `endpoint`.
async function registerService(id, type, endpoint) {
  const key = await Secp256k1Keypair.create()
  const op = await plc.signOperation(
    {
      type: 'plc_operation',
      rotationKeys: [key.did()],
      verificationMethods: { atproto: key.did() },
      alsoKnownAs: [],
      services: { [id]: { type, endpoint } },
      prev: null,
    },
    key,
  )
  const did = await plc.didForCreateOp(op)
  await new plc.Client(plcUrl).sendOperation(did, op)
  return did
}

// ---------------------------------------------------------------------------------------------
// The client, through our PDS.

const agent = new AtpAgent({ service: pdsUrl })
let did
let handle
const lastSeen = () => seen[seen.length - 1]

await step('createAccount', async () => {
  const res = await agent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: 'hunter22' })
  did = res.data.did
  handle = res.data.handle
})

await step('getTimeline: the app view accepts our token (aud = app view, lxm, iss = account)', async () => {
  view.timeline = []
  const res = await agent.app.bsky.feed.getTimeline({ limit: 5 })
  assert.deepEqual(res.data.feed, [])
  const { payload, headers } = lastSeen()
  assert.equal(payload.iss, did)
  assert.equal(payload.aud, APPVIEW_DID)
  assert.equal(payload.lxm, 'app.bsky.feed.getTimeline')
  assert.ok(payload.exp - payload.iat <= 60, `lifetime ${payload.exp - payload.iat}`)
  assert.match(payload.jti, /^[0-9a-f]{32}$/)
  assert.ok(headers['atproto-accept-labelers'], 'atproto-accept-labelers is forwarded')
  assert.equal(headers.cookie, undefined)
})

await step('getProfile through the PDS', async () => {
  const res = await agent.app.bsky.actor.getProfile({ actor: handle })
  assert.equal(res.data.did, did)
  assert.equal(res.data.displayName, 'Alice (app view)')
  assert.equal(lastSeen().payload.lxm, 'app.bsky.actor.getProfile')
})

await step('custom feed: the token is for the feed generator, lxm getFeedSkeleton', async () => {
  const gen = await agent.com.atproto.repo.createRecord({
    repo: did,
    collection: 'app.bsky.feed.generator',
    record: { $type: 'app.bsky.feed.generator', did: FEEDGEN_DID, displayName: 'Test feed', createdAt: new Date().toISOString() },
  })
  const res = await agent.app.bsky.feed.getFeed({ feed: gen.data.uri })
  assert.deepEqual(res.data.feed, [])
  const { payload, aud } = lastSeen()
  assert.equal(aud, FEEDGEN_DID)
  assert.equal(payload.aud, FEEDGEN_DID)
  assert.equal(payload.lxm, 'app.bsky.feed.getFeedSkeleton')
  assert.equal(payload.iss, did)
})

await step('createReport goes to the report service', async () => {
  const res = await agent.com.atproto.moderation.createReport({
    reasonType: 'com.atproto.moderation.defs#reasonSpam',
    subject: { $type: 'com.atproto.admin.defs#repoRef', did: OTHER_DID },
    reason: 'spam',
  })
  assert.equal(res.data.id, 42)
  assert.equal(res.data.reportedBy, did)
  assert.equal(res.data.reason, 'spam')
  const { payload } = lastSeen()
  assert.equal(payload.aud, REPORT_DID)
  assert.equal(payload.lxm, 'com.atproto.moderation.createReport')
})

await step('atproto-proxy: chat through a service found in a DID document, with a body', async () => {
  view.chatDid = await registerService('bsky_chat', 'BskyChatService', STANDIN_URL)
  const chat = agent.withProxy('bsky_chat', view.chatDid)
  const list = await chat.chat.bsky.convo.listConvos()
  assert.deepEqual(list.data.convos, [])
  assert.equal(lastSeen().payload.aud, view.chatDid)
  const sent = await chat.chat.bsky.convo.sendMessage({ convoId: 'c1', message: { text: 'hello through the PDS' } })
  assert.equal(sent.data.text, 'hello through the PDS')
  assert.equal(lastSeen().payload.lxm, 'chat.bsky.convo.sendMessage')
})

// Read-after-write: the app view has seen the first post and profile (rev R1), not what follows.
let first
let second
await step('read-after-write: getAuthorFeed includes the post the app view has not seen', async () => {
  await agent.com.atproto.repo.putRecord({
    repo: did,
    collection: 'app.bsky.actor.profile',
    rkey: 'self',
    record: { $type: 'app.bsky.actor.profile', displayName: 'Alice v1' },
  })
  first = await agent.post({ text: 'first post', createdAt: new Date().toISOString() })
  const seenAt = new Date().toISOString()
  view.rev = (await agent.com.atproto.sync.getLatestCommit({ did })).data.rev
  const firstRecord = (await agent.com.atproto.repo.getRecord({ repo: did, collection: 'app.bsky.feed.post', rkey: first.uri.split('/').pop() })).data.value
  view.posts = [
    {
      uri: first.uri,
      cid: first.cid,
      author: { did, handle, displayName: 'Alice v1' },
      record: firstRecord,
      indexedAt: seenAt,
      likeCount: 3,
    },
  ]
  await new Promise((r) => setTimeout(r, 20))
  second = await agent.post({ text: 'second post, not yet indexed', createdAt: new Date().toISOString() })
  await agent.com.atproto.repo.putRecord({
    repo: did,
    collection: 'app.bsky.actor.profile',
    rkey: 'self',
    record: { $type: 'app.bsky.actor.profile', displayName: 'Alice v2', description: 'new bio' },
  })
  const res = await agent.app.bsky.feed.getAuthorFeed({ actor: did })
  const uris = res.data.feed.map((item) => item.post.uri)
  assert.deepEqual(uris, [second.uri, first.uri])
  const merged = res.data.feed[0].post
  assert.equal(merged.cid, second.cid)
  assert.equal(merged.record.text, 'second post, not yet indexed')
  assert.equal(merged.author.displayName, 'Alice v2')
  assert.equal(merged.likeCount, 0)
  assert.equal(res.data.feed[1].post.author.displayName, 'Alice v2', 'older posts get the new profile')
  assert.equal(res.data.feed[1].post.likeCount, 3, 'app view data is kept')
  assert.match(res.headers['atproto-upstream-lag'] ?? '', /^\d+$/)
})

await step('read-after-write: getProfile shows the profile the app view has not seen', async () => {
  const res = await agent.app.bsky.actor.getProfile({ actor: did })
  assert.equal(res.data.displayName, 'Alice v2')
  assert.equal(res.data.description, 'new bio')
  assert.equal(res.data.followersCount, 7)
  assert.ok(res.headers['atproto-upstream-lag'])
})

await step('read-after-write: getTimeline gets the post the app view has not seen on top', async () => {
  view.timeline = [
    {
      post: {
        uri: `at://${OTHER_DID}/app.bsky.feed.post/3kaaaaaaaaaaa`,
        cid: first.cid,
        author: { did: OTHER_DID, handle: 'other.test' },
        record: { $type: 'app.bsky.feed.post', text: 'old', createdAt: '2020-01-01T00:00:00.000Z' },
        indexedAt: '2020-01-01T00:00:00.000Z',
      },
    },
  ]
  const res = await agent.app.bsky.feed.getTimeline({})
  assert.deepEqual(
    res.data.feed.map((item) => item.post.uri),
    [second.uri, `at://${OTHER_DID}/app.bsky.feed.post/3kaaaaaaaaaaa`],
  )
})

await step('read-after-write: getPostThread of a post the app view does not know', async () => {
  const res = await agent.app.bsky.feed.getPostThread({ uri: second.uri })
  assert.equal(res.data.thread.$type, 'app.bsky.feed.defs#threadViewPost')
  assert.equal(res.data.thread.post.uri, second.uri)
  // ... but a post that is not the account's stays NotFound.
  const err = await rejection(agent.app.bsky.feed.getPostThread({ uri: `at://${OTHER_DID}/app.bsky.feed.post/3kaaaaaaaaaaa` }))
  assert.equal(err.error, 'NotFound')
})

await step('read-after-write: nothing merged once the app view is up to date', async () => {
  view.rev = (await agent.com.atproto.sync.getLatestCommit({ did })).data.rev
  const res = await agent.app.bsky.feed.getAuthorFeed({ actor: did })
  assert.deepEqual(res.data.feed.map((item) => item.post.uri), [first.uri])
  assert.equal(res.headers['atproto-upstream-lag'], undefined)
})

await step('upstream errors come back as they were', async () => {
  const err = await rejection(agent.app.bsky.unspecced.getConfig())
  assert.equal(err.status, 400)
  assert.equal(err.error, 'ConfigOff')
  assert.equal(err.message, 'config is switched off')
  const crash = await rejection(agent.app.bsky.unspecced.getPopularFeedGenerators({}))
  assert.equal(crash.status, 502, 'an upstream 500 is a 502')
})

await step('unreachable upstream: 502 UpstreamFailure', async () => {
  const closed = await new Promise((resolve) => {
    const s = http.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
  const deadDid = await registerService('bsky_chat', 'BskyChatService', `http://127.0.0.1:${closed}`)
  const err = await rejection(agent.withProxy('bsky_chat', deadDid).chat.bsky.convo.listConvos())
  assert.equal(err.status, 502)
  assert.equal(err.error, 'UpstreamFailure')
})

await step('a proxy header naming an unknown service or DID is refused', async () => {
  const err = await rejection(agent.withProxy('bsky_nope', view.chatDid).chat.bsky.convo.listConvos())
  assert.equal(err.status, 400)
  assert.equal(err.message, 'could not resolve proxy did service url')
  const noDid = await rejection(agent.withProxy('bsky_chat', 'did:plc:nosuchdidaaaaaaaaaaaaaaa').chat.bsky.convo.listConvos())
  assert.equal(noDid.status, 400)
  assert.equal(noDid.message, 'could not resolve proxy did')
})

await step('com.atproto methods we do not serve are never forwarded; no session, no proxying', async () => {
  const before = hits.get('/xrpc/com.atproto.temp.noSuchMethod') ?? 0
  const res = await fetch(`${pdsUrl}/xrpc/com.atproto.temp.noSuchMethod`, {
    headers: { authorization: `Bearer ${agent.session.accessJwt}` },
  })
  assert.equal(res.status, 501)
  assert.equal((await res.json()).error, 'MethodNotImplemented')
  assert.equal(hits.get('/xrpc/com.atproto.temp.noSuchMethod') ?? 0, before)
  const anon = await fetch(`${pdsUrl}/xrpc/app.bsky.feed.getTimeline`)
  assert.equal(anon.status, 401)
  assert.equal((await anon.json()).error, 'AuthMissing')
})

// Tokens the stand-in must refuse, checked with the same verifier.
const callStandin = async (nsid, token, params = '') => {
  const res = await fetch(`${STANDIN_URL}/xrpc/${nsid}${params}`, { headers: { authorization: `Bearer ${token}` } })
  return { status: res.status, body: await res.json() }
}
const timelineToken = () => seen.find((s) => s.lxm === 'app.bsky.feed.getTimeline').token

await step('refused: a token for another audience', async () => {
  const res = await callStandin('app.bsky.feed.getFeed', timelineToken(), `?feed=at://${did}/app.bsky.feed.generator/x`)
  assert.equal(res.status, 401)
  assert.equal(res.body.error, 'BadJwtAudience')
})

await step('refused: a token for another method', async () => {
  const res = await callStandin('app.bsky.actor.getProfile', timelineToken(), `?actor=${did}`)
  assert.equal(res.status, 401)
  assert.equal(res.body.error, 'BadJwtLexiconMethod')
})

await step('refused: an expired token', async () => {
  const token = timelineToken()
  const { exp } = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString())
  const realNow = Date.now
  Date.now = () => (exp + 1) * 1000
  try {
    await assert.rejects(verifyJwt(token, APPVIEW_DID, 'app.bsky.feed.getTimeline', getSigningKey), (e) => e.customErrorName === 'JwtExpired')
  } finally {
    Date.now = realNow
  }
  // Still good now: it is short-lived, not broken.
  await verifyJwt(token, APPVIEW_DID, 'app.bsky.feed.getTimeline', getSigningKey)
})

await step('refused: a tampered token', async () => {
  const [h, p, s] = timelineToken().split('.')
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString())
  payload.lxm = 'app.bsky.actor.getProfile'
  const forged = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`
  const res = await callStandin('app.bsky.actor.getProfile', forged, `?actor=${did}`)
  assert.equal(res.status, 401)
  assert.equal(res.body.error, 'BadJwtSignature')
})

await step('every token was unique', async () => {
  const jtis = seen.map((s) => s.payload.jti)
  assert.equal(new Set(jtis).size, jtis.length)
})

httpServer.close()
finish()
