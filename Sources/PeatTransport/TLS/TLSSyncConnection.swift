import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
public import PeatIdentity

/// An authenticated TLS connection to a formation member.
public final class TLSSyncConnection: SyncConnection {
    public let peer: PeerIdentity
    public let role: MembershipRole
    public let remoteAddress: String
    public let path: ConnectionPath
    public let protocolVersion: SyncProtocolVersion

    let asyncChannel: NIOAsyncChannel<[[UInt8]], Frame>
    let maximumPayloadSize: Int
    private let roundTripTimeBox: NIOLockedValueBox<Duration?>
    let closeReason: NIOLockedValueBox<TransportError?>
    private let claim = ConnectionClaim()

    init(
        peer: PeerIdentity, role: MembershipRole, remoteAddress: String, path: ConnectionPath = .direct,
        version: SyncProtocolVersion, asyncChannel: NIOAsyncChannel<[[UInt8]], Frame>, maximumPayloadSize: Int,
        roundTripTime: NIOLockedValueBox<Duration?>, closeReason: NIOLockedValueBox<TransportError?>
    ) {
        self.peer = peer
        self.role = role
        self.remoteAddress = remoteAddress
        self.path = path
        self.protocolVersion = version
        self.asyncChannel = asyncChannel
        self.maximumPayloadSize = maximumPayloadSize
        self.roundTripTimeBox = roundTripTime
        self.closeReason = closeReason
    }

    public var roundTripTime: Duration? { roundTripTimeBox.withLockedValue { $0 } }

    public func withFrames<Result: Sendable>(
        _ body: (_ inbound: SyncInboundFrames, _ outbound: SyncFrameWriter) async throws -> Result
    ) async throws -> Result {
        try claim.takeForFrames()
        let maximum = maximumPayloadSize
        let closeReason = closeReason
        return try await asyncChannel.executeThenClose { inbound, outbound in
            let iterator = InboundIterator(inbound.makeAsyncIterator(), closeReason: closeReason)
            let frames = SyncInboundFrames { try await iterator.next() }
            let writer = SyncFrameWriter { payload in
                try ConnectionClaim.checkSize(payload, maximum: maximum)
                do {
                    try await outbound.write(Frame(kind: .data, payload: payload))
                } catch {
                    throw closeReason.withLockedValue { $0 }
                        ?? TransportError(code: .connectionClosed, message: "the connection is closed", cause: error)
                }
            }
            return try await body(frames, writer)
        }
    }

    public func close() async {
        closeUnclaimedOrChannel()
        try? await asyncChannel.channel.closeFuture.get()
    }

    /// Closes the socket at once, below TLS: NIOSSL's own close sends close_notify and waits up to its
    /// shutdown timeout (5 s) for the peer's, which a hung peer never sends.
    public func abort() async {
        closeReason.withLockedValue { if $0 == nil { $0 = TransportError(code: .connectionClosed, message: "closed without waiting for the peer") } }
        let channel = asyncChannel.channel
        channel.eventLoop.execute {
            // A close issued by the TLS handler's context starts at the handler before it, the socket.
            if let tls = try? channel.pipeline.syncOperations.context(handlerType: NIOSSLServerHandler.self) {
                tls.close(promise: nil)
            } else if let tls = try? channel.pipeline.syncOperations.context(handlerType: NIOSSLClientHandler.self) {
                tls.close(promise: nil)
            } else {
                channel.close(promise: nil)
            }
        }
        if claim.take() { asyncChannel.finishUnused() }
        try? await channel.closeFuture.get()
    }

    /// Closes the connection recording `reason` (for example a duplicate after a simultaneous dial).
    func close(reason: TransportError) {
        closeReason.withLockedValue { if $0 == nil { $0 = reason } }
        closeUnclaimedOrChannel()
    }

    /// Closes the channel; if `withFrames` never ran, also releases the unused async wrapper.
    private func closeUnclaimedOrChannel() {
        if claim.take() {
            asyncChannel.finishUnused()
        } else {
            asyncChannel.channel.close(promise: nil)
        }
    }

    deinit {
        // A connection dropped without withFrames or close must still release its channel.
        if !claim.isTaken { asyncChannel.finishUnused() }
    }
}

/// The inbound frame iterator of one `withFrames` call; used from that call's task only.
private final class InboundIterator: @unchecked Sendable {
    // @unchecked Sendable: `withFrames` hands it to exactly one consumer; it is never shared.
    private var iterator: NIOAsyncChannelInboundStream<[[UInt8]]>.AsyncIterator
    private let closeReason: NIOLockedValueBox<TransportError?>
    private var batch: [[UInt8]] = []
    private var position = 0

    init(_ iterator: NIOAsyncChannelInboundStream<[[UInt8]]>.AsyncIterator, closeReason: NIOLockedValueBox<TransportError?>) {
        self.iterator = iterator
        self.closeReason = closeReason
    }

    func next() async throws -> [UInt8]? {
        if position < batch.count {
            defer { position += 1 }
            return batch[position]
        }
        do {
            guard let next = try await iterator.next(), !next.isEmpty else {
                if let reason = closeReason.withLockedValue({ $0 }) { throw reason }
                return nil
            }
            batch = next
            position = 1
            return next[0]
        } catch let error as TransportError {
            throw error
        } catch {
            throw closeReason.withLockedValue { $0 }
                ?? TransportError(code: .connectionClosed, message: "the connection failed", cause: error)
        }
    }
}
