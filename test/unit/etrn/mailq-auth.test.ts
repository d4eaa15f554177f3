import assert from 'node:assert/strict';
import { aclAllows, addressBytes, findUser, hasRight, parseAclItem } from '../../../node-image/src/mailq/auth.ts';

describe('scheduler.auth IP ACLs and rights', () => {
  it('matches the ZMailer [a.b.c.d]/bits form and plain CIDR', () => {
    assert.equal(aclAllows(['[127.0.0.0]/8'], '127.20.0.11'), true);
    assert.equal(aclAllows(['127.0.0.0/8'], '::ffff:127.20.0.11'), true);
    assert.equal(aclAllows(['[127.0.0.0]/8'], '10.0.0.1'), false);
    assert.equal(aclAllows(['[10.1.2.3]'], '10.1.2.3'), true, 'no /bits: the whole address');
    assert.equal(aclAllows(['[10.1.2.3]'], '10.1.2.4'), false);
    assert.equal(aclAllows(['[10.1.2.0]/23'], '10.1.3.200'), true);
    assert.equal(aclAllows(['[10.1.2.0]/23'], '10.1.4.1'), false);
  });

  it('allows everyone with an empty ACL, nobody unmatched with a non-empty one', () => {
    assert.equal(aclAllows([], '198.51.100.1'), true);
    assert.equal(aclAllows(['[0.0.0.0]/0'], '198.51.100.1'), true);
    assert.equal(aclAllows(['[0.0.0.0]/0'], '2001:db8::1'), false, 'an IPv4 ACL does not match IPv6');
  });

  it('lets the first matching item decide, ! refusing', () => {
    assert.equal(aclAllows(['![127.0.0.2]', '[127.0.0.0]/8'], '127.0.0.2'), false);
    assert.equal(aclAllows(['![127.0.0.2]', '[127.0.0.0]/8'], '127.0.0.3'), true);
    assert.equal(aclAllows(['![127.0.0.2],[127.0.0.0]/8'], '127.0.0.2'), false, 'items may share one string');
  });

  it('reads IPv6 literals', () => {
    assert.equal(aclAllows(['[IPv6:2001:db8::]/32'], '2001:db8:1::5'), true);
    assert.equal(aclAllows(['[IPv6:2001:db8::]/32'], '2001:db9::5'), false);
    assert.deepEqual([...(addressBytes('::1.2.3.4') ?? [])].slice(12), [1, 2, 3, 4]);
    assert.throws(() => parseAclItem('[300.1.1.1]/8'), /bad IP ACL item/);
  });

  it('picks the first entry of a user whose ACL admits the client', () => {
    const users = [
      { user: 'etrn', password: 'a', rights: ['ETRN'], acls: ['[10.0.0.0]/8'] },
      { user: 'etrn', password: 'b', rights: ['ALL'], acls: ['[127.0.0.0]/8'] },
    ];
    assert.equal(findUser(users, 'etrn', '127.0.0.1')?.password, 'b');
    assert.equal(findUser(users, 'etrn', '192.0.2.1'), undefined);
    assert.equal(hasRight(users[1], 'ETRN'), true, 'ALL holds every right');
    assert.equal(hasRight({ user: 'x', password: '', rights: ['QQ'], acls: [] }, 'ETRN'), false);
  });
});
