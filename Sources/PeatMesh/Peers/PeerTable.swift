import PeatDiscovery
import PeatIdentity
import PeatTransport
import Synchronization

/// Every peer the mesh knows: discovered ones (by node ID) with their dial state, and open sync
/// sessions (by device ID). `/peers` and the connector read it; sessions and discovery write it.
final class PeerTable: Sendable {
    struct Discovered {
        var info: PeerInfo
        /// The device the peer must have (derived from its node ID, or announced by mDNS).
        var expected: DeviceID?
        /// The device a connection to this peer authenticated, once one did.
        var known: DeviceID?
        var state: String = "discovered"
    }

    struct Session {
        let id: UInt64
        var nodeID: String?
        let connection: any SyncConnection
        var addresses: [String]
    }

    private struct State {
        var discovered: [String: Discovered] = [:]
        /// Open sessions by session ID: during a connection replacement a device briefly has two.
        var sessions: [UInt64: Session] = [:]
        var nextSessionID: UInt64 = 0
    }

    private let state = Mutex(State())

    // MARK: Discovery

    /// Records a found or updated peer; returns true when it is new.
    func discover(_ info: PeerInfo, expected: DeviceID?) -> Bool {
        state.withLock { state in
            if var existing = state.discovered[info.nodeID] {
                existing.info = info
                existing.expected = expected ?? existing.expected
                state.discovered[info.nodeID] = existing
                return false
            }
            state.discovered[info.nodeID] = Discovered(info: info, expected: expected)
            return true
        }
    }

    /// Forgets a lost peer; returns the connection to close, if one is open to it.
    func lose(_ nodeID: String) -> (any SyncConnection)? {
        state.withLock { state in
            guard let lost = state.discovered.removeValue(forKey: nodeID) else { return nil }
            let device = lost.known ?? lost.expected
            if let device, let session = state.sessions.values.first(where: { $0.connection.peer.deviceID == device }) { return session.connection }
            return state.sessions.values.first { $0.nodeID == nodeID }?.connection
        }
    }

    func discovered(_ nodeID: String) -> Discovered? {
        state.withLock { $0.discovered[nodeID] }
    }

    var discoveredCount: Int { state.withLock { $0.discovered.count } }

    func setDialState(_ nodeID: String, _ dialState: String, known: DeviceID? = nil) {
        state.withLock { state in
            state.discovered[nodeID]?.state = dialState
            if let known { state.discovered[nodeID]?.known = known }
        }
    }

    /// Whether a session to the discovered peer is open (by its device, or by the node ID it said).
    func isConnected(_ nodeID: String) -> Bool {
        state.withLock { state in
            if let peer = state.discovered[nodeID], let device = peer.known ?? peer.expected,
               state.sessions.values.contains(where: { $0.connection.peer.deviceID == device }) {
                return true
            }
            return state.sessions.values.contains { $0.nodeID == nodeID }
        }
    }

    // MARK: Sessions

    func open(_ connection: any SyncConnection, addresses: [String]) -> UInt64 {
        state.withLock { state in
            state.nextSessionID += 1
            state.sessions[state.nextSessionID] = Session(id: state.nextSessionID, nodeID: nil, connection: connection, addresses: addresses)
            return state.nextSessionID
        }
    }

    /// Records the node ID a session's peer said; returns the peer as `/peers` shows it.
    func hello(_ device: DeviceID, session: UInt64, nodeID: String) -> MeshPeer? {
        state.withLock { state in
            guard var current = state.sessions[session] else { return nil }
            current.nodeID = nodeID
            if let discovered = state.discovered[nodeID] {
                current.addresses = discovered.info.addresses.map(\.description)
                state.discovered[nodeID]?.known = device
                state.discovered[nodeID]?.state = "connected"
            }
            state.sessions[session] = current
            return Self.peer(current)
        }
    }

    /// Removes a session that ended; returns the peer as it was.
    func close(_ device: DeviceID, session: UInt64) -> MeshPeer? {
        state.withLock { state in
            guard let current = state.sessions.removeValue(forKey: session) else { return nil }
            return Self.peer(current)
        }
    }

    private static func peer(_ session: Session) -> MeshPeer {
        MeshPeer(
            id: session.nodeID ?? session.connection.peer.deviceID.hex, deviceID: session.connection.peer.deviceID.hex,
            connected: true, state: "connected", roundTripTime: session.connection.roundTripTime, addresses: session.addresses)
    }

    /// Connected peers first (by ID), then discovered peers without a session.
    func peers() -> [MeshPeer] {
        state.withLock { state in
            // One entry per device: the newest session.
            var newest: [DeviceID: Session] = [:]
            for session in state.sessions.values where session.id > (newest[session.connection.peer.deviceID]?.id ?? 0) {
                newest[session.connection.peer.deviceID] = session
            }
            let connected = newest.values.map(Self.peer).sorted { $0.id < $1.id }
            let connectedDevices = Set(newest.keys)
            let connectedIDs = Set(connected.map(\.id))
            let others = state.discovered.values
                .filter { !connectedIDs.contains($0.info.nodeID) && ($0.known.map { !connectedDevices.contains($0) } ?? true) }
                .map { peer in
                    MeshPeer(
                        id: peer.info.nodeID, deviceID: (peer.known ?? peer.expected)?.hex, connected: false,
                        state: peer.state == "connected" ? "disconnected" : peer.state, roundTripTime: nil,
                        addresses: peer.info.addresses.map(\.description))
                }
                .sorted { $0.id < $1.id }
            return connected + others
        }
    }

    var connectedCount: Int { state.withLock { Set($0.sessions.values.map(\.connection.peer.deviceID)).count } }
}
