// A real OpenID provider (oidc-provider) for rosterd's tests, served over HTTPS.
//
// Usage: node provider.mjs CONFIG.json. The config names the issuer, port, TLS
// certificate and key, the signing keys (a JWKS file), the clients, and an accounts
// file that is re-read at every login so a test can change a person's claims
// between logins. SIGHUP re-reads the config and the keys (new clients, a key
// rotation); a line "listening" on stdout says the server is up.
import fs from 'node:fs';
import https from 'node:https';
import Provider from 'oidc-provider';

let config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));

function readAccounts() {
  return JSON.parse(fs.readFileSync(config.accounts_file, 'utf8'));
}

// Claims a login may carry; oidc-provider drops any claim not listed here.
const CLAIMS = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: ['name', 'given_name', 'family_name', 'preferred_username', 'nickname',
    'upn', 'groups', 'team', 'roles', 'login_name'],
  groups: ['groups'],
};

function build() {
  const jwks = JSON.parse(fs.readFileSync(config.jwks_file, 'utf8'));
  const provider = new Provider(config.issuer, {
    clients: config.clients,
    jwks,
    pkce: { required: () => true },
    cookies: { keys: ['rosterd-tests-cookie-key'] },
    claims: CLAIMS,
    // Claims go into the ID token even when an access token is issued, as most
    // providers do; an account's "userinfo_only" claims show up only at UserInfo.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: true } },
    ttl: { IdToken: 3600, AccessToken: 3600, Session: 3600, Grant: 3600, Interaction: 3600 },
    async findAccount(ctx, id) {
      // The login form's name, or the sub it stands for (a test sets both).
      const accounts = readAccounts();
      const entry = accounts[id] ?? Object.values(accounts).find((a) => a.sub === id) ?? {};
      return {
        accountId: id,
        async claims(use) {
          const claims = { sub: id, ...(entry.claims ?? {}) };
          if (use === 'userinfo') Object.assign(claims, entry.userinfo_only ?? {});
          return claims;
        },
      };
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  return provider;
}

let handler = build().callback();
const server = https.createServer(
  { cert: fs.readFileSync(config.tls_cert), key: fs.readFileSync(config.tls_key) },
  (req, res) => handler(req, res),
);
process.on('SIGHUP', () => {
  config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  handler = build().callback();
  console.log('keys reloaded');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
server.listen(config.port, '127.0.0.1', () => console.log('listening'));
