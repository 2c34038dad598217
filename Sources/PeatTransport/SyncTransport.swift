public import PeatIdentity

/// The ALPN protocol ID of sync protocol 1 (`SyncProtocolVersion.v1`); nodes offer every version they
/// speak (`SyncProtocolVersion`).
public let syncALPN = SyncProtocolVersion.v1.alpn

/// Who is on the other end of an authenticated connection.
public struct PeerIdentity: Hashable, Sendable, CustomStringConvertible {
    /// The key the peer proved it holds (its TLS certificate key).
    public let publicKey: DevicePublicKey
    /// The device ID derived from `publicKey`.
    public var deviceID: DeviceID { publicKey.deviceID }

    public init(publicKey: DevicePublicKey) {
        self.publicKey = publicKey
    }

    public var description: String { deviceID.hex }
}

/// Where to reach a peer: a host name or IP literal and a TCP port.
public struct PeerAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port`, with an IPv6 literal in brackets.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// One authenticated connection to a formation member.
///
/// Nothing is delivered before the peer proved formation membership. Frames are read and written
/// inside `withFrames`, exactly once per connection; when its body returns, the connection closes.
public protocol SyncConnection: AnyObject, Sendable {
    /// The authenticated peer.
    var peer: PeerIdentity { get }
    /// Whether this node opened (`initiator`) or accepted (`responder`) the connection.
    var role: MembershipRole { get }
    /// The peer's address as seen on this connection.
    var remoteAddress: String { get }
    /// The latest measured round-trip time, if any.
    var roundTripTime: Duration? { get }
    /// How the connection reaches the peer: directly, or through a relay.
    var path: ConnectionPath { get }
    /// The sync protocol version negotiated for this connection (ALPN).
    var protocolVersion: SyncProtocolVersion { get }

    /// Runs `body` with the connection's inbound frame payloads and an outbound writer, then closes it.
    ///
    /// Reading is backpressured: the peer is slowed down when `inbound` is not consumed. Writing
    /// suspends while the connection cannot take more data.
    /// - Throws: `TransportError` when called twice or when the connection fails; `body`'s errors.
    func withFrames<Result: Sendable>(
        _ body: (_ inbound: SyncInboundFrames, _ outbound: SyncFrameWriter) async throws -> Result
    ) async throws -> Result

    /// Closes the connection, giving the peer a chance to acknowledge (TLS close_notify), and waits
    /// until it is closed.
    func close() async

    /// Closes the connection at once, without waiting for the peer: for a peer that may be hung
    /// (discovery lost it), whose socket would otherwise stay open until a shutdown timeout.
    func abort() async
}

/// How a connection reaches its peer.
public enum ConnectionPath: Hashable, Sendable, CustomStringConvertible {
    /// A TCP connection to the peer's address.
    case direct
    /// A session through the relay at this URL; the relay forwards the two peers' TLS end to end.
    case relay(RelayURL)

    /// `direct` or `relay` (the label `/api/v1/peers` and the metrics use).
    public var name: String {
        switch self {
        case .direct: "direct"
        case .relay: "relay"
        }
    }

    /// The relay's URL when relayed.
    public var relayURL: RelayURL? {
        if case .relay(let url) = self { return url }
        return nil
    }

    public var description: String {
        switch self {
        case .direct: "direct"
        case .relay(let url): "relay \(url)"
        }
    }
}

extension SyncConnection {
    /// Connections of transports without relays are direct.
    public var path: ConnectionPath { .direct }

    /// Transports that negotiate no version speak the first protocol.
    public var protocolVersion: SyncProtocolVersion { .v1 }

    /// Transports whose `close()` never waits for the peer need nothing more.
    public func abort() async {
        await close()
    }
}

/// A transport that opens and accepts authenticated connections between formation members.
public protocol SyncTransport: Sendable {
    /// This node's identity as presented to peers.
    var localIdentity: PeerIdentity { get }

    /// Connections peers opened to this node, after authentication. Iterate it from one task.
    var inboundConnections: AsyncStream<any SyncConnection> { get }

    /// Opens an authenticated connection to a peer.
    /// - Parameters:
    ///   - address: Where the peer listens.
    ///   - expectedPeer: When known (for example derived from the peer's hostname), the device ID
    ///     the peer must have; any other is rejected.
    /// - Throws: `TransportError` (`.connectFailed`, `.notFormationMember`, `.unexpectedIdentity`,
    ///   `.handshakeTimeout`, `.duplicateConnection`, ...).
    func connect(to address: PeerAddress, expectedPeer: DeviceID?) async throws -> any SyncConnection

    /// Opens an authenticated connection to `device` through the relay at `relay`.
    /// - Throws: `TransportError`; transports without relay support throw `.connectFailed`.
    func connect(through relay: RelayURL, to device: DeviceID) async throws -> any SyncConnection

    /// The relays this transport dials through when a peer names none (its own relays).
    var relays: [RelayURL] { get }
}

extension SyncTransport {
    public func connect(through relay: RelayURL, to device: DeviceID) async throws -> any SyncConnection {
        throw TransportError(code: .connectFailed, message: "this transport does not support relays")
    }

    public var relays: [RelayURL] { [] }
}

/// The payloads of the data frames a connection receives, in order.
public struct SyncInboundFrames: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    public typealias Failure = any Error

    let next: @Sendable () async throws -> [UInt8]?

    /// Wraps a function that returns the next payload, or nil at the end.
    package init(next: @escaping @Sendable () async throws -> [UInt8]?) {
        self.next = next
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let next: @Sendable () async throws -> [UInt8]?
        public mutating func next() async throws -> [UInt8]? { try await next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(next: next) }
}

/// Writes data frames to a connection.
public struct SyncFrameWriter: Sendable {
    let write: @Sendable ([UInt8]) async throws -> Void

    package init(write: @escaping @Sendable ([UInt8]) async throws -> Void) {
        self.write = write
    }

    /// Sends one frame; suspends while the connection cannot take more data.
    /// - Throws: `TransportError` with `.frameTooLarge` or `.connectionClosed`.
    public func send(_ payload: [UInt8]) async throws {
        try await write(payload)
    }
}
