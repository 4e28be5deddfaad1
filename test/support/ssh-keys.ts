/**
 * Ed25519 key pairs for tests of single functions (fake SSH hosts). ssh2's generateKeyPairSync
 * strips leading zero bytes of the public key, so about one pair in 256 cannot be parsed back
 * ("Malformed OpenSSH private key": mscdex/ssh2#1390, #1513); such a pair is made again.
 */
import { utils } from 'ssh2';

export function ed25519KeyPair(): { private: string; public: string } {
  for (let i = 0; i < 50; i++) {
    const pair = utils.generateKeyPairSync('ed25519');
    if (!(utils.parseKey(pair.private) instanceof Error) && !(utils.parseKey(pair.public) instanceof Error)) return pair;
  }
  throw new Error('ssh2 made 50 unparseable ed25519 key pairs in a row');
}
