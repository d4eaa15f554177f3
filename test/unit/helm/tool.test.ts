// The helm build's pure parts: versions read from local/go/helm/go.mod, the cache path and
// the release build's linker flags.
import assert from 'node:assert/strict';
import { helmLdflags, clientGoVersionFromGoMod, helmToolDir, helmVersionFromGoMod } from '../../../local/src/tools/helm.ts';

const goMod = `module mailcluster.local/helm

go 1.26.0

require helm.sh/helm/v3 v3.22.0

require (
	k8s.io/api v0.37.0 // indirect
	k8s.io/client-go v0.37.0 // indirect
)
`;

describe('helm tool build (pure parts)', () => {
  it('reads the pinned helm and client-go versions from go.mod, in either require form', () => {
    assert.equal(helmVersionFromGoMod(goMod), 'v3.22.0');
    assert.equal(helmVersionFromGoMod('require (\n\thelm.sh/helm/v3 v3.21.1\n)\n'), 'v3.21.1');
    assert.equal(clientGoVersionFromGoMod(goMod), '0.37.0');
    assert.throws(() => helmVersionFromGoMod('module x\n'), /does not require helm\.sh\/helm\/v3/);
    assert.throws(() => clientGoVersionFromGoMod('module x\n'), /k8s\.io\/client-go/);
  });

  it('caches under ${XDG_CACHE_HOME:-$HOME/.cache}/mailcluster/tools/helm-<version>', () => {
    assert.equal(helmToolDir('v3.22.0', { XDG_CACHE_HOME: '/c' }), '/c/mailcluster/tools/helm-v3.22.0');
    assert.equal(helmToolDir('v3.22.0', { HOME: '/home/u' }), '/home/u/.cache/mailcluster/tools/helm-v3.22.0');
  });

  it('links like helm\'s release build: version, clean tree, default Kubernetes 1.<client-go minor>', () => {
    const flags = helmLdflags('v3.22.0', '0.37.0');
    assert.match(flags, /internal\/version\.version=v3\.22\.0/);
    assert.match(flags, /internal\/version\.gitTreeState=clean/);
    assert.match(flags, /pkg\/chartutil\.k8sVersionMajor=1 /);
    assert.match(flags, /pkg\/chartutil\.k8sVersionMinor=37/);
    assert.match(flags, /pkg\/lint\/rules\.k8sVersionMinor=37/);
  });
});
