// The test site answers conditional requests as a real server does, so a
// recrawl can be tested against it: ETag and Last-Modified on every page,
// 304 for a validator that still matches, 200 with new validators for a
// page that changed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSite } from '#test/fixtures/site.js';

test('the test site: ETag and Last-Modified, 304 while they match, a changed page answers 200 with new ones', async (t) => {
  const site = await startSite({ pages: 20, bad: false });
  t.after(() => site.close());
  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${site.url}${path}`, { headers });

  const first = await get('/p/3.html');
  assert.equal(first.status, 200);
  const etag = first.headers.get('etag')!;
  const lastModified = first.headers.get('last-modified')!;
  const body = await first.text();
  assert.match(etag, /^".+"$/);
  assert.ok(Number.isFinite(Date.parse(lastModified)));

  const byTag = await get('/p/3.html', { 'If-None-Match': etag });
  assert.equal(byTag.status, 304);
  assert.equal(await byTag.text(), '');
  assert.equal((await get('/p/3.html', { 'If-None-Match': `W/${etag}` })).status, 304, 'a weak comparison matches too');
  assert.equal((await get('/p/3.html', { 'If-Modified-Since': lastModified })).status, 304);
  assert.equal((await get('/p/3.html', { 'If-None-Match': '"other"', 'If-Modified-Since': lastModified })).status, 200, 'If-None-Match wins');
  assert.equal((await get('/p/4.html', { 'If-None-Match': etag })).status, 200, "another page's ETag does not match");
  assert.equal(site.notModified.get('/p/3.html'), 3);

  site.change(['/p/3.html']);
  const changed = await get('/p/3.html', { 'If-None-Match': etag, 'If-Modified-Since': lastModified });
  assert.equal(changed.status, 200);
  assert.notEqual(changed.headers.get('etag'), etag);
  assert.ok(Date.parse(changed.headers.get('last-modified')!) > Date.parse(lastModified));
  assert.notEqual(await changed.text(), body);
  assert.equal((await get('/p/3.html', { 'If-Modified-Since': lastModified })).status, 200);
  assert.equal((await get('/p/3.html', { 'If-None-Match': changed.headers.get('etag')! })).status, 304);
});
