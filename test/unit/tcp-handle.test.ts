import assert from 'node:assert/strict';
import * as net from 'node:net';
import { describe, it } from 'node:test';
import { socketFromHandle, takeOverAccept, type TcpHandle } from '../../src/tcp-handle';

describe('tcp-handle: the node internals the dispatcher relies on (as node:cluster does)', () => {
  it('refuses a server that is not listening, with a message naming node', () => {
    assert.throws(() => takeOverAccept(net.createServer(), () => {}), /this node \(v\d+.*has no listening TCP handle/);
  });

  it('an accepted connection arrives as a bare handle, unread, and a socket over it serves both ways', async () => {
    const server = net.createServer(() => assert.fail('net.Server must not see the connection'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const accepted = new Promise<{ status: number; handle: TcpHandle | undefined }>((resolve) =>
      takeOverAccept(server, (status, handle) => resolve({ status, handle })),
    );
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    client.write('ping');
    client.end(); // half-close: the server side must still be able to answer
    const { status, handle } = await accepted;
    assert.equal(status, 0);
    assert.ok(handle, 'a handle');
    assert.equal((handle as unknown as net.Socket).constructor.name, 'TCP', 'a TCP wrap, not a JS socket');

    const socket = socketFromHandle(handle);
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (received += d));
    await new Promise<void>((r) => socket.once('end', r));
    assert.equal(received, 'ping', 'the bytes sent before the handoff were waiting in the kernel');
    assert.equal(socket.allowHalfOpen, true, 'half-open capable, as http.Server sockets');
    socket.end('pong');
    let reply = '';
    client.setEncoding('utf8');
    client.on('data', (d: string) => (reply += d));
    await new Promise<void>((r) => client.once('close', () => r()));
    assert.equal(reply, 'pong', 'the answer got through after the client half-closed');
    await new Promise<void>((r) => server.close(() => r()));
  });
});
