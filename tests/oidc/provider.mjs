// A real OpenID Connect provider (panva's oidc-provider) for sluice's integration tests.
//
//   node provider.mjs '{"alice":["dba"],"bob":["sre"]}' [port]
//
// Listens on 127.0.0.1 (port from argv[3], else $OIDC_PORT, else 0 = any free port) and prints
// one line `READY <issuer>` on stdout once it accepts connections. Everything else goes to stderr.
//
// Tests need tokens without a browser, so a custom grant type issues them directly at the real
// token endpoint (client `sluice-tests`, secret `sluice-tests-secret`, HTTP Basic):
//
//   POST /token  grant_type=urn:sluice:params:oauth:grant-type:test-token
//                user=alice [audience=sluice] [ttl=600] [alg=RS256|ES256]
//
// The answer is an OAuth access token in JWT format (RFC 9068: header typ `at+jwt`), signed by
// the provider's own key from its published JWKS, with sub=user, aud=audience, iss=issuer,
// exp=now+ttl, and a `groups` claim with the user's groups. Unknown users are refused.
//
//   POST /__test/rotate
//
// rotates the signing keys: new keys sign from now on, the previous ones stay published (as a
// real provider does during a rollover), so a verifier holding the old JWKS meets an unknown kid.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const GRANT = 'urn:sluice:params:oauth:grant-type:test-token';
const CLIENT_ID = 'sluice-tests';
const CLIENT_SECRET = 'sluice-tests-secret';

const users = JSON.parse(process.argv[2] ?? '{}');
for (const [user, groups] of Object.entries(users)) {
  if (!Array.isArray(groups) || groups.some((g) => typeof g !== 'string')) {
    throw new TypeError(`groups of ${user} must be an array of strings`);
  }
}
const port = Number(process.argv[3] ?? process.env.OIDC_PORT ?? 0);

// One RSA and one P-256 signing key per generation; the newest generation comes first, so the
// provider signs with it (oidc-provider picks the first key matching the algorithm).
function newKeys() {
  const gen = randomUUID().slice(0, 8);
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, kid: `rsa-${gen}`, alg: 'RS256', use: 'sig' },
    { ...ec, kid: `ec-${gen}`, alg: 'ES256', use: 'sig' },
  ];
}

function positiveInt(value, name, fallback) {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new errors.InvalidRequest(`${name} must be a positive integer`);
  return n;
}

function buildProvider(issuer, jwks) {
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      grant_types: [GRANT],
      redirect_uris: [],
      response_types: [],
    }],
    jwks: { keys: jwks },
    features: { devInteractions: { enabled: false } },
    // The groups claim of every access token comes from the users argument.
    extraTokenClaims: (_ctx, token) => (token.accountId ? { groups: users[token.accountId] } : undefined),
  });

  provider.registerGrantType(GRANT, async (ctx) => {
    const { params, client } = ctx.oidc;
    const user = params.user;
    if (!user || !Object.hasOwn(users, user)) {
      // invalid_request shows its description to the client; invalid_grant hides it.
      throw new errors.InvalidRequest(`unknown user ${JSON.stringify(user)}`);
    }
    const audience = params.audience || 'sluice';
    const ttl = positiveInt(params.ttl, 'ttl', 600);
    const alg = params.alg || 'RS256';
    if (alg !== 'RS256' && alg !== 'ES256') throw new errors.InvalidRequest('alg must be RS256 or ES256');

    const token = new provider.AccessToken({
      accountId: user,
      client,
      gty: GRANT,
      scope: 'openid',
      expiresIn: ttl,
      resourceServer: new provider.ResourceServer(audience, {
        audience,
        scope: 'openid',
        accessTokenFormat: 'jwt',
        accessTokenTTL: ttl,
        jwt: { sign: { alg } },
      }),
    });
    ctx.oidc.entity('AccessToken', token);
    const value = await token.save();
    ctx.body = {
      access_token: value, token_type: 'Bearer', expires_in: ttl, scope: 'openid',
    };
  }, ['user', 'audience', 'ttl', 'alg']);

  provider.on('server_error', (_ctx, err) => console.error('oidc-provider server_error:', err));
  return provider;
}

let keys = newKeys();
let handler;
const server = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/__test/rotate') {
    // The previous generation stays published (rollover); only the current and previous stay.
    keys = [...newKeys(), ...keys.slice(0, 2)];
    handler = buildProvider(issuer, keys).callback();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kids: keys.map((k) => k.kid) }));
    return;
  }
  handler(req, res);
});

let issuer;
server.listen(port, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  handler = buildProvider(issuer, keys).callback();
  process.stdout.write(`READY ${issuer}\n`);
});

// The harness kills us with SIGKILL on drop; a polite SIGTERM/SIGINT also ends cleanly.
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
