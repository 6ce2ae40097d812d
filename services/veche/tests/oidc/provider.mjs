// A real OpenID provider on loopback for the sign-in tests: npm's oidc-provider (OpenID
// Certified), with its development login form (any login name; the password is not
// checked) and one confidential client whose redirect URI is Veche's callback.
//
// Accounts are named by their login: `<login>@example.org`, with `email_verified` true,
// except logins starting with `unverified` (false). Signing keys are made at start;
// `POST /test/rotate` adds a new key that signs from then on, so relying parties must
// refetch the JWKS.
//
// Environment: PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, VECHE_BROWSER_MODULES (where
// npm installed oidc-provider). Prints `ready <issuer>` once it listens.
import { pathToFileURL } from "node:url";
import { generateKeyPairSync } from "node:crypto";
import { createServer } from "node:http";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const modules = env("VECHE_BROWSER_MODULES");
const { default: Provider } = await import(pathToFileURL(`${modules}/oidc-provider/lib/index.js`).href);

const issuer = `http://127.0.0.1:${env("PORT")}`;
let generation = 0;
function newKey() {
  generation += 1;
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { ...privateKey.export({ format: "jwk" }), kid: `key-${generation}`, use: "sig", alg: "RS256" };
}

function configuration(keys) {
  return {
    clients: [
      {
        client_id: env("CLIENT_ID"),
        client_secret: env("CLIENT_SECRET"),
        redirect_uris: [env("REDIRECT_URI")],
        grant_types: ["authorization_code"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_basic",
      },
    ],
    // The newest key signs (oidc-provider signs with the first key of an algorithm).
    jwks: { keys: [...keys].reverse() },
    pkce: { required: () => true },
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ["a test cookie key that is long enough"] },
    async findAccount(_ctx, id) {
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            email: `${id}@example.org`,
            email_verified: !id.startsWith("unverified"),
            name: `Person ${id}`,
          };
        },
      };
    },
  };
}

const keys = [newKey()];
let provider = new Provider(issuer, configuration(keys));
provider.proxy = true;

// Rotation swaps in a provider with the new key first; state lives in memory, so flows
// in progress do not survive it (the tests rotate between flows).
const server = createServer((req, res) => {
  if (req.method === "POST" && req.url === "/test/rotate") {
    keys.push(newKey());
    provider = new Provider(issuer, configuration(keys));
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ kid: keys[keys.length - 1].kid }));
    return;
  }
  provider.callback()(req, res);
});
server.listen(Number(env("PORT")), "127.0.0.1", () => console.log(`ready ${issuer}`));
