import PeatDiscovery
import PeatIdentity
import PeatTransport

/// Every peer this node knows, by device: its open session (with the session's sync state machine)
/// and, while discovery reports it, what discovery says and how far the connector got dialling it.
///
/// The one answer to "who is connected" (`PeatMesh.peers()` reads a copy, `PeerDirectory`). A
/// discovered peer whose device no source names and no connection has shown yet waits in
/// `unresolved` until its first authenticated connection. A plain value: the sync coordinator owns it.
struct PeerRegistry {
    struct SessionID: Hashable, Sendable, CustomStringConvertible {
        let value: UInt64
        var description: String { "\(value)" }
    }

    /// How far the connector got with a discovered peer.
    enum DialState: String, Equatable, Sendable {
        /// Found, no attempt yet.
        case discovered
        /// Dialling its addresses.
        case connecting
        /// A session to its device is open (in either direction).
        case connected
        /// No address answered; waiting to dial again.
        case backoff
        /// Its session ended; it is dialled again shortly.
        case disconnected
    }

    struct Session {
        let id: SessionID
        let connection: any SyncConnection
        var addresses: [String]
        var machine: SyncSession.StateMachine
        /// Rung when the machine has something to send; finished when the session must end.
        let doorbell: AsyncStream<Void>.Continuation
    }

    /// What discovery says about a peer, and the connector's progress with it.
    struct Discovery {
        var info: PeerInfo
        /// The device the peer must present (derived from its node ID, or announced by mDNS).
        var expected: DeviceID?
        var dial = DialState.discovered
        /// Which discovery of the node ID this is: a peer lost and found again gets a new dial loop.
        let generation: UInt64
        /// Rung when the peer's session ends, so a dial loop waiting while it is connected dials again.
        let wake: AsyncStream<Void>.Continuation

        /// Where the peer listens, as discovery reports it.
        var addresses: [PeerAddress] { info.addresses.map { PeerAddress(host: $0.host, port: $0.port) } }
    }

    struct Peer {
        var nodeID: String?
        var discovery: Discovery?
        var session: Session?
    }

    /// What the connector gets for a newly discovered peer.
    struct DialTicket: Sendable {
        let generation: UInt64
        let wake: AsyncStream<Void>
    }

    private(set) var peers: [DeviceID: Peer] = [:]
    private var unresolved: [String: Discovery] = [:]
    /// Node ID -> device, for discovered peers whose device is known.
    private var devices: [String: DeviceID] = [:]
    /// Open session -> its device.
    private var sessionDevices: [SessionID: DeviceID] = [:]
    private var lastSessionID: UInt64 = 0
    private var lastGeneration: UInt64 = 0

    // MARK: Discovery

    /// Records a found or updated peer; returns a ticket for its dial loop when it is new.
    mutating func discover(_ info: PeerInfo, expected: DeviceID?) -> DialTicket? {
        let nodeID = info.nodeID
        if let device = devices[nodeID], var discovery = peers[device]?.discovery, discovery.info.nodeID == nodeID {
            discovery.info = info
            discovery.expected = expected ?? discovery.expected
            peers[device]?.discovery = discovery
            return nil
        }
        if var discovery = unresolved[nodeID] {
            discovery.info = info
            discovery.expected = expected
            if let expected {
                unresolved[nodeID] = nil
                attach(discovery, to: expected)
            } else {
                unresolved[nodeID] = discovery
            }
            return nil
        }
        lastGeneration += 1
        let (wake, ring) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let discovery = Discovery(info: info, expected: expected, generation: lastGeneration, wake: ring)
        if let expected { attach(discovery, to: expected) } else { unresolved[nodeID] = discovery }
        return DialTicket(generation: lastGeneration, wake: wake)
    }

    private mutating func attach(_ discovery: Discovery, to device: DeviceID) {
        var discovery = discovery
        var peer = peers[device] ?? Peer()
        // One device, one discovered peer: found again under another node ID (a static peer given
        // by address that turns out to be a Kubernetes pod), the newer report replaces the older,
        // whose dial loop then stops.
        if let older = peer.discovery, older.info.nodeID != discovery.info.nodeID {
            devices[older.info.nodeID] = nil
            older.wake.finish()
        }
        if peer.session != nil { discovery.dial = .connected }
        peer.discovery = discovery
        peer.nodeID = peer.nodeID ?? discovery.info.nodeID
        peers[device] = peer
        devices[discovery.info.nodeID] = device
    }

    /// A connection to a discovered peer authenticated `device`: the peer is that device from now on.
    mutating func resolve(_ nodeID: String, generation: UInt64, to device: DeviceID) {
        guard let discovery = unresolved[nodeID], discovery.generation == generation else { return }
        unresolved[nodeID] = nil
        attach(discovery, to: device)
    }

    /// Forgets a peer discovery lost (ending its dial loop); returns its session, which the caller
    /// ends at once, if one is open to it.
    mutating func lose(_ nodeID: String) -> Session? {
        if let discovery = unresolved.removeValue(forKey: nodeID) {
            discovery.wake.finish()
        }
        var lostDevice: DeviceID?
        if let device = devices.removeValue(forKey: nodeID), peers[device]?.discovery?.info.nodeID == nodeID {
            peers[device]?.discovery?.wake.finish()
            peers[device]?.discovery = nil
            lostDevice = device
        }
        // A peer that dialled in under this node ID is the same peer, whatever discovery knew of it.
        let device =
            lostDevice.flatMap { peers[$0]?.session == nil ? nil : $0 }
            ?? peers.first { $0.value.session?.machine.peerNodeID == nodeID }?.key
        guard let device, let session = peers[device]?.session else {
            if let lostDevice { removeIfUnused(lostDevice) }
            return nil
        }
        peers[device]?.session = nil
        sessionDevices[session.id] = nil
        removeIfUnused(device)
        return session
    }

    private mutating func removeIfUnused(_ device: DeviceID) {
        if let peer = peers[device], peer.session == nil, peer.discovery == nil { peers[device] = nil }
    }

    /// What the dial loop of `nodeID` should do next.
    enum DialDecision {
        /// Dial these addresses, expecting this device; then the peer's relay, if it names one.
        case dial([PeerAddress], expected: DeviceID?, relays: [RelayURL])
        /// A session with the peer is open: wait for its wake signal.
        case wait
        /// Discovery lost the peer (or found it again under a newer loop): stop.
        case stop
    }

    func dialDecision(_ nodeID: String, generation: UInt64) -> DialDecision {
        let discovery: Discovery
        if let device = devices[nodeID], let known = peers[device]?.discovery {
            if let session = peers[device]?.session {
                guard known.generation == generation else { return .stop }
                // A relayed session another loop runs (the peer dialled in): keep trying the direct
                // addresses; the first that works replaces the relayed connection.
                guard session.connection.path != .direct, !known.info.addresses.isEmpty else { return .wait }
                return .dial(known.addresses, expected: known.expected, relays: [])
            }
            discovery = known
        } else if let waiting = unresolved[nodeID] {
            discovery = waiting
        } else {
            return .stop
        }
        guard discovery.generation == generation else { return .stop }
        // A peer that dialled in under this node ID but is not yet resolved is connected too.
        if peers.values.contains(where: { $0.session?.machine.peerNodeID == nodeID }) { return .wait }
        let relays = discovery.info.relayURL.flatMap { try? RelayURL(parsing: $0) }.map { [$0] } ?? []
        return .dial(discovery.addresses, expected: discovery.expected, relays: relays)
    }

    /// Discovery's addresses for `nodeID` under dial loop `generation` (nil for a stale loop).
    func directAddresses(_ nodeID: String, generation: UInt64) -> [PeerAddress]? {
        let discovery = devices[nodeID].flatMap { peers[$0]?.discovery } ?? unresolved[nodeID]
        guard let discovery, discovery.generation == generation else { return nil }
        return discovery.addresses
    }

    /// Records the dial loop's progress (ignored for a stale loop).
    mutating func setDial(_ nodeID: String, generation: UInt64, _ state: DialState) {
        if let device = devices[nodeID], peers[device]?.discovery?.generation == generation {
            peers[device]?.discovery?.dial = state
        } else if unresolved[nodeID]?.generation == generation {
            unresolved[nodeID]?.dial = state
        }
    }

    var discoveredCount: Int { unresolved.count + devices.count }

    // MARK: Sessions

    /// Opens a session (replacing the device's previous one, which the transport has closed); returns
    /// its ID and the replaced session, whose state the caller saves.
    mutating func open(
        _ connection: any SyncConnection, addresses: [String], machine: SyncSession.StateMachine,
        doorbell: AsyncStream<Void>.Continuation
    ) -> (id: SessionID, replaced: Session?) {
        lastSessionID += 1
        let id = SessionID(value: lastSessionID)
        let device = connection.peer.deviceID
        let replaced = peers[device]?.session
        if let replaced { sessionDevices[replaced.id] = nil }
        sessionDevices[id] = device
        peers[device, default: Peer()].session = Session(
            id: id, connection: connection, addresses: peers[device]?.discovery.map(Self.addresses) ?? addresses,
            machine: machine, doorbell: doorbell)
        peers[device]?.discovery?.dial = .connected
        return (id, replaced)
    }

    /// Runs `body` on the open session `id`; nil when it is no longer open (replaced, lost, closed).
    mutating func withSession<Result, Failure: Error>(
        _ id: SessionID, _ body: (inout Session) throws(Failure) -> Result
    ) throws(Failure) -> Result? {
        guard let device = device(of: id) else { return nil }
        guard var session = peers[device]?.session else { return nil }
        peers[device]?.session = nil  // moved out, so the machine is changed in place
        defer { peers[device]?.session = session }
        return try body(&session)
    }

    private func device(of id: SessionID) -> DeviceID? {
        sessionDevices[id]
    }

    /// Every open session but `excluded`.
    mutating func forEachSession(except excluded: SessionID?, _ body: (inout Session) -> Void) {
        for device in Array(peers.keys) where peers[device]?.session.map({ $0.id != excluded }) == true {
            guard var session = peers[device]?.session else { continue }
            peers[device]?.session = nil
            body(&session)
            peers[device]?.session = session
        }
    }

    /// The peer said hello on session `id`: it is known by that node ID from now on.
    /// - Returns: The session as it is now (addresses from discovery when discovery knows the peer).
    mutating func established(_ id: SessionID, nodeID: String) -> Session? {
        guard let device = device(of: id) else { return nil }
        peers[device]?.nodeID = nodeID
        if let discovery = unresolved.removeValue(forKey: nodeID) { attach(discovery, to: device) }
        if let discovery = peers[device]?.discovery {
            peers[device]?.session?.addresses = Self.addresses(discovery)
            peers[device]?.discovery?.dial = .connected
        }
        return peers[device]?.session
    }

    /// Removes session `id` when it ended; nil when it was already gone (replaced or lost).
    mutating func close(_ id: SessionID) -> Session? {
        guard let device = device(of: id), let session = peers[device]?.session else { return nil }
        peers[device]?.session = nil
        sessionDevices[id] = nil
        if let discovery = peers[device]?.discovery {
            peers[device]?.discovery?.dial = .disconnected
            discovery.wake.yield()
        } else {
            removeIfUnused(device)
        }
        return session
    }

    private static func addresses(_ discovery: Discovery) -> [String] {
        discovery.info.addresses.map(\.description)
    }

    // MARK: Listing

    /// What `PeatMesh.peers()` shows: connected peers first (by ID), then discovered ones without a session.
    func listing() -> [PeerDirectory.Row] {
        var connected: [PeerDirectory.Row] = []
        var others: [PeerDirectory.Row] = []
        for (device, peer) in peers {
            if let session = peer.session {
                connected.append(
                    .init(
                        id: session.machine.peerNodeID ?? peer.nodeID ?? device.hex, deviceID: device.hex, state: DialState.connected.rawValue,
                        connection: session.connection, addresses: session.addresses))
            } else if let discovery = peer.discovery {
                others.append(
                    .init(
                        id: discovery.info.nodeID, deviceID: device.hex, state: discovery.dial.rawValue, connection: nil,
                        addresses: Self.addresses(discovery)))
            }
        }
        let connectedIDs = Set(connected.map(\.id))
        for discovery in unresolved.values where !connectedIDs.contains(discovery.info.nodeID) {
            others.append(
                .init(
                    id: discovery.info.nodeID, deviceID: discovery.expected?.hex, state: discovery.dial.rawValue, connection: nil,
                    addresses: Self.addresses(discovery)))
        }
        return connected.sorted { $0.id < $1.id } + others.sorted { $0.id < $1.id }
    }
}
