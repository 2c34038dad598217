/// How many inbound connections may be in their handshake (TLS plus the formation proof) at once,
/// and for how long.
///
/// A connection counts from the moment it is accepted until its peer proved formation membership
/// or it closed. One that would go past either limit is closed at once, before any TLS work, so a
/// flood of idle sockets or bogus TLS clients costs the node a file descriptor for an instant and
/// never touches the members already connected.
public struct HandshakeLimits: Sendable, Equatable {
    /// Handshakes in flight from all addresses together.
    public var maximumPending: Int
    /// Handshakes in flight from one IP address.
    public var maximumPendingPerAddress: Int
    /// A handshake during which nothing arrives for this long is closed (an idle or stalled socket).
    public var idleTimeout: Duration

    /// - Parameters:
    ///   - maximumPending: In flight in total (default 128).
    ///   - maximumPendingPerAddress: In flight from one address (default 16: a NAT gateway or a
    ///     node's own reconnects need a few, a single flooding host gets no more).
    ///   - idleTimeout: Silence allowed during the handshake (default 5 s; the whole handshake is
    ///     bounded by `TLSSyncTransport.Configuration.handshakeTimeout`).
    public init(maximumPending: Int = 128, maximumPendingPerAddress: Int = 16, idleTimeout: Duration = .seconds(5)) {
        self.maximumPending = maximumPending
        self.maximumPendingPerAddress = maximumPendingPerAddress
        self.idleTimeout = idleTimeout
    }
}

/// The accounting behind `HandshakeLimits`: which accepted connections are still in their
/// handshake, from which address. A value type with no clock and no I/O (tested on its own).
struct HandshakeAdmission: Sendable {
    /// Why a connection was not admitted.
    enum Refusal: Sendable, Equatable {
        case total(limit: Int)
        case perAddress(limit: Int)
    }

    let limits: HandshakeLimits
    private var byConnection: [ObjectIdentifier: String] = [:]
    private var byAddress: [String: Int] = [:]

    init(limits: HandshakeLimits) {
        self.limits = limits
    }

    /// Handshakes in flight in total.
    var pending: Int { byConnection.count }

    /// Handshakes in flight from `address`.
    func pending(from address: String) -> Int { byAddress[address, default: 0] }

    /// Admits `connection` from `address`, or says which limit it would exceed.
    mutating func admit(_ connection: ObjectIdentifier, from address: String) -> Refusal? {
        guard byConnection[connection] == nil else { return nil }
        guard byConnection.count < limits.maximumPending else { return .total(limit: limits.maximumPending) }
        let fromAddress = byAddress[address, default: 0]
        guard fromAddress < limits.maximumPendingPerAddress else { return .perAddress(limit: limits.maximumPendingPerAddress) }
        byConnection[connection] = address
        byAddress[address] = fromAddress + 1
        return nil
    }

    /// The connection's handshake ended (authenticated or closed); a second call is a no-op.
    mutating func release(_ connection: ObjectIdentifier) {
        guard let address = byConnection.removeValue(forKey: connection) else { return }
        let left = byAddress[address, default: 1] - 1
        byAddress[address] = left > 0 ? left : nil
    }
}
