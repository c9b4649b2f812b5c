// Runs infra/cloudfront/basic-auth.js under Node with CloudFront's
// viewer-request event shape and a KeyValueStore stand-in that, like
// CloudFront's, rejects a get() of a missing key. Exit status 1 on any
// failed case. Run: node infra/cloudfront/basic-auth.test.mjs
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import test from 'node:test';
import crypto from 'node:crypto';

const source = readFileSync(fileURLToPath(new URL('./basic-auth.js', import.meta.url)), 'utf8');

// The runtime's two imports become parameters; nothing else changes.
function load(store) {
    const body = source
        .replace("import cf from 'cloudfront';", '')
        .replace("const crypto = require('crypto');", '');
    assert.notEqual(body, source, 'the imports are where the test expects them');
    const cf = {
        kvs: () => ({
            async get(key) {
                if (!store.has(key)) {
                    throw new Error(`key ${key} not found`);
                }
                return store.get(key);
            },
        }),
    };
    return new Function('cf', 'crypto', 'Buffer', `${body}\nreturn handler;`)(cf, crypto, Buffer);
}

const sha256 = (text) => createHash('sha256').update(text).digest('hex');
const handler = load(new Map([
    ['ci', sha256('correct horse battery staple')],
    ['ann', sha256('pa:ss')],
]));

function event(uri, authorization, method = 'GET') {
    const headers = { host: { value: 'd111111abcdef8.cloudfront.net' } };
    if (authorization !== undefined) {
        headers.authorization = { value: authorization };
    }
    return {
        version: '1.0',
        context: {
            distributionDomainName: 'd111111abcdef8.cloudfront.net',
            distributionId: 'EDFDVBD6EXAMPLE',
            eventType: 'viewer-request',
            requestId: 'EXAMPLE',
        },
        viewer: { ip: '198.51.100.11' },
        request: { method, uri, querystring: {}, headers, cookies: {} },
    };
}

const basic = (user, password) =>
    'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
const good = basic('ci', 'correct horse battery staple');

test('good credentials pass the request on, without them', async () => {
    for (const [uri, method] of [
        ['/pkg_summary.gz', 'GET'],
        ['/pkg_summary.xz', 'HEAD'],
        ['/p5-Foo-Bar-1.0nb1.tgz', 'GET'],
        ['/c++-utils-2.0.tgz', 'GET'],
    ]) {
        const out = await handler(event(uri, good, method));
        assert.equal(out.uri, uri);
        assert.equal(out.method, method);
        assert.equal(out.headers.authorization, undefined);
        assert.equal(out.headers.host.value, 'd111111abcdef8.cloudfront.net');
    }
    // A password with a colon: only the first one separates the user.
    const out = await handler(event('/pkg_summary.gz', basic('ann', 'pa:ss')));
    assert.equal(out.uri, '/pkg_summary.gz');
});

test('missing, wrong and malformed credentials are challenged', async () => {
    const refused = [
        undefined,
        basic('ci', 'wrong'),
        basic('ci', ''),
        basic('ann', 'correct horse battery staple'),
        basic('mallory', 'correct horse battery staple'),
        basic('', 'correct horse battery staple'),
        'Basic ' + Buffer.from('no colon').toString('base64'),
        'Basic !!!',
        'Bearer correct horse battery staple',
        'basic',
    ];
    for (const authorization of refused) {
        for (const uri of ['/pkg_summary.gz', '/../secret', '/']) {
            const out = await handler(event(uri, authorization));
            assert.equal(out.statusCode, 401, `${authorization} ${uri}`);
            assert.equal(out.headers['www-authenticate'].value, 'Basic realm="pkgsum", charset="UTF-8"');
            assert.equal(out.uri, undefined, 'nothing goes to the origin');
        }
    }
});

test('paths outside the repository are not found, even with good credentials', async () => {
    const outside = [
        '/../secret.tgz',
        '/%2e%2e/secret.tgz',
        '/..%2Fsecret.tgz',
        '/sub/x.tgz',
        '/sub%2Fx.tgz',
        '//foo-1.0.tgz',
        '/.pkgsum/status.json',
        '/.pkgsum-tmp-1',
        '/.hidden.tgz',
        '/..',
        '/foo-1.0.tgz/',
        '/foo%00.tgz',
        '/foo\\..\\x.tgz',
        '/site/notes.js',
        '/site/1-0123456789abcdef.html',
        '/site/1-0123456789ABCDEF.js',
        '/site/../pkg_summary.gz',
        '/site/site/1-0123456789abcdef.js',
        '/other/1-0123456789abcdef.js',
        '/site/1-0123456789abcdef.js/',
    ];
    for (const uri of outside) {
        const out = await handler(event(uri, good));
        assert.equal(out.statusCode, 404, uri);
        assert.equal(out.uri, undefined, uri);
    }
});

test('the site: its page at the root, its run files under site/', async () => {
    const out = await handler(event('/', good));
    assert.equal(out.uri, '/index.html');
    assert.equal(out.headers.authorization, undefined);
    for (const uri of [
        '/index.html',
        '/packages.json',
        '/site/12-0123456789abcdef.js',
        '/site/12-0123456789abcdef.details.js',
        '/site/12-0123456789abcdef.json',
    ]) {
        assert.equal((await handler(event(uri, good))).uri, uri, uri);
        assert.equal((await handler(event(uri, undefined))).statusCode, 401, uri);
    }
});

test('only GET and HEAD', async () => {
    for (const method of ['PUT', 'POST', 'DELETE', 'OPTIONS']) {
        const out = await handler(event('/foo-1.0.tgz', good, method));
        assert.equal(out.statusCode, 405, method);
        assert.equal(out.headers.allow.value, 'GET, HEAD');
    }
});
