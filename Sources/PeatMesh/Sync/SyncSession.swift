import PeatIdentity
import PeatTransport

/// Runs the mesh sync protocol over one authenticated connection until it closes.
///
/// Three tasks share the connection: the reader hands every message to the engine (the first must
/// be the peer's `hello`), the writer sends what the engine has queued whenever its doorbell rings
/// (push on change, after `pushDelay` to batch a burst), and the anti-entropy timer offers the root
/// digest when it moved. Frames larger than a chunk are split and reassembled here.
struct SyncSession {
    /// The largest frame sent whole; larger ones travel as chunks.
    static let chunkSize = 1024 * 1024
    /// The largest message reassembled from chunks.
    static let maximumMessageSize = 256 * 1024 * 1024

    let connection: any SyncConnection
    let engine: DocumentEngine
    let localNodeID: String
    let incarnation: [UInt8]
    let antiEntropyInterval: Duration
    let pushDelay: Duration
    let traffic: MeshTraffic
    /// Called once the peer said hello, with its node ID; returns when the caller recorded it.
    let onHello: @Sendable (_ nodeID: String) -> Void

    /// Runs the session; returns why it ended (nil for an orderly close).
    func run() async -> (any Error)? {
        let device = connection.peer.deviceID
        let (doorbell, ring) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        do {
            try await connection.withFrames { inbound, outbound in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        try await send(MeshMessage.hello(nodeID: localNodeID, incarnation: incarnation).encoded(), outbound)
                        for await _ in doorbell {
                            if pushDelay > .zero { try await Task.sleep(for: pushDelay) }
                            while let frame = await engine.nextFrame(for: device) {
                                try await send(frame, outbound)
                            }
                        }
                    }
                    group.addTask {
                        try await read(inbound, device: device, ring: ring)
                    }
                    group.addTask {
                        var ticks = 0
                        while true {
                            try await Task.sleep(for: antiEntropyInterval)
                            ticks += 1
                            // Sync state is saved every few passes and when the session ends.
                            await engine.antiEntropy(device: device, persist: ticks % 6 == 0)
                        }
                    }
                    // The first task to finish (the reader at the end of the connection, or any error) ends the session.
                    defer { group.cancelAll() }
                    try await group.next()
                }
            }
            return nil
        } catch {
            return error
        }
    }

    private func read(_ inbound: SyncInboundFrames, device: DeviceID, ring: AsyncStream<Void>.Continuation) async throws {
        var iterator = inbound.makeAsyncIterator()
        guard let first = try await iterator.next() else { return }
        traffic.received(first.count)
        guard case .hello(let nodeID, let peerIncarnation) = try MeshMessage(decoding: first) else {
            throw MeshError(code: .protocolViolation, message: "the first message was not hello")
        }
        let token = await engine.attach(device: device, nodeID: nodeID, incarnation: peerIncarnation, doorbell: ring)
        onHello(nodeID)
        do {
            var reassembly: [UInt8] = []
            while let frame = try await iterator.next() {
                traffic.received(frame.count)
                var message = try MeshMessage(decoding: frame)
                if case .chunk(let more, let bytes) = message {
                    guard reassembly.count + bytes.count <= Self.maximumMessageSize else {
                        throw MeshError(code: .protocolViolation, message: "a chunked message exceeds \(Self.maximumMessageSize) bytes")
                    }
                    reassembly += bytes
                    if more { continue }
                    message = try MeshMessage(decoding: reassembly)
                    reassembly = []
                }
                try await engine.receive(message, from: device)
            }
        } catch {
            await engine.detach(device: device, token: token)
            throw error
        }
        await engine.detach(device: device, token: token)
    }

    private func send(_ frame: [UInt8], _ outbound: SyncFrameWriter) async throws {
        guard frame.count > Self.chunkSize else {
            try await outbound.send(frame)
            traffic.sent(frame.count)
            return
        }
        var offset = 0
        while offset < frame.count {
            let end = min(offset + Self.chunkSize, frame.count)
            let chunk = MeshMessage.chunk(more: end < frame.count, bytes: Array(frame[offset..<end])).encoded()
            try await outbound.send(chunk)
            traffic.sent(chunk.count)
            offset = end
        }
    }
}
