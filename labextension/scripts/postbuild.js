// After `jupyter labextension build`: the builder empties the output directory,
// so put install.json back, and record a hash of the sources the bundle was
// built from (tests/ext/test_labextension.py recomputes it to catch a stale
// committed bundle).
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const out = path.resolve(root, require(path.join(root, 'package.json')).jupyterlab.outputDir);

/** The inputs of the bundle, relative to labextension/, sorted. */
function sources() {
  const files = ['package.json', 'tsconfig.json'];
  for (const dir of ['schema', 'src', 'style']) {
    for (const name of fs.readdirSync(path.join(root, dir))) {
      files.push(`${dir}/${name}`);
    }
  }
  return files.sort();
}

const hash = crypto.createHash('sha256');
for (const file of sources()) {
  hash.update(`${file}\0`);
  hash.update(fs.readFileSync(path.join(root, file)));
  hash.update('\0');
}
fs.copyFileSync(path.join(root, 'install.json'), path.join(out, 'install.json'));
fs.writeFileSync(path.join(out, 'sources.sha256'), `${hash.digest('hex')}\n`);
