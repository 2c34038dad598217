import Metrics
public import PeatCRDT
public import PeatStorage
public import PeatTransport
import Synchronization

/// A live document as an embedding service reads it.
public struct MeshDocument: Sendable, Equatable {
    /// Where it lives.
    public var key: DocumentKey
    /// The document's fields (a JSON object).
    public var value: [String: JSON]
    /// The store version of its last write: pass it as `ifVersion` for a conditional write.
    public var version: UInt64

    public init(key: DocumentKey, value: [String: JSON], version: UInt64) {
        self.key = key
        self.value = value
        self.version = version
    }
}

/// The outcome of a replacing write.
public struct MeshWriteResult: Sendable, Equatable {
    /// The document as written.
    public var document: MeshDocument
    /// True when no live document existed before.
    public var created: Bool
}

/// One page of a collection listing.
public struct MeshDocumentPage: Sendable, Equatable {
    /// Live documents in ID order.
    public var documents: [MeshDocument]
    /// Pass as `after:` for the next page; nil on the last page.
    public var nextCursor: String?
}

/// A peer as the mesh sees it: discovered, being dialled, or connected.
public struct MeshPeer: Sendable, Equatable {
    /// The peer's node ID (its hostname / identity context) when known, else its device ID.
    public var id: String
    /// The peer's device ID (32 hex characters), once a connection authenticated it.
    public var deviceID: String?
    /// Whether an authenticated sync session is open.
    public var connected: Bool
    /// `connected`, `connecting`, `backoff` (waiting to redial) or `discovered`.
    public var state: String
    /// The latest round-trip time of the connection.
    public var roundTripTime: Duration?
    /// Where the peer is reached (discovery's addresses, or the connection's remote address).
    public var addresses: [String]
    /// How the open session reaches the peer (nil without one).
    public var path: ConnectionPath?

    public init(
        id: String, deviceID: String?, connected: Bool, state: String, roundTripTime: Duration?, addresses: [String],
        path: ConnectionPath? = nil
    ) {
        self.id = id
        self.deviceID = deviceID
        self.connected = connected
        self.state = state
        self.roundTripTime = roundTripTime
        self.addresses = addresses
        self.path = path
    }
}

/// What the mesh reports to subscribers of `PeatMesh.events()`.
public enum MeshEvent: Sendable, Equatable {
    /// A peer passed the formation handshake and said hello.
    case peerConnected(MeshPeer)
    /// A peer's session ended; `reason` says why.
    case peerDisconnected(MeshPeer, reason: String)
    /// A document was written, locally or by sync.
    case documentChanged(DocumentKey, deleted: Bool, origin: MeshChangeOrigin)
}

/// Who made a document change.
public enum MeshChangeOrigin: Sendable, Equatable, CustomStringConvertible {
    /// This node (an API write or compaction).
    case local
    /// A peer, by node ID, whose change arrived by sync.
    case peer(String)

    public var description: String {
        switch self {
        case .local: "local"
        case .peer(let nodeID): nodeID
        }
    }
}

/// A change to one document, as `PeatMesh.update` applies it.
public enum MeshEdit: Sendable {
    /// Replace the whole document with this JSON object (a minimal diff is recorded).
    case replace([String: JSON])
    /// Apply an RFC 7396 merge patch to the live document.
    case mergePatch([String: JSON])
    /// Delete the document (a tombstone every replica honours).
    case delete
}

/// Sync traffic counters of a mesh (mesh protocol payloads, without TLS and TCP overhead).
public final class MeshTraffic: Sendable {
    private let counters = Mutex((framesSent: 0, bytesSent: 0, framesReceived: 0, bytesReceived: 0))
    private let sentBytes: Counter
    private let receivedBytes: Counter
    private let sentFrames: Counter
    private let receivedFrames: Counter

    /// - Parameter factory: Where the `peat_mesh_sync_*` counters go.
    init(factory: any MetricsFactory) {
        sentBytes = Counter(label: "peat_mesh_sync_sent_bytes_total", factory: factory)
        receivedBytes = Counter(label: "peat_mesh_sync_received_bytes_total", factory: factory)
        sentFrames = Counter(label: "peat_mesh_sync_sent_frames_total", factory: factory)
        receivedFrames = Counter(label: "peat_mesh_sync_received_frames_total", factory: factory)
    }

    func sent(_ bytes: Int) {
        counters.withLock {
            $0.framesSent += 1
            $0.bytesSent += bytes
        }
        sentBytes.increment(by: bytes)
        sentFrames.increment()
    }

    func received(_ bytes: Int) {
        counters.withLock {
            $0.framesReceived += 1
            $0.bytesReceived += bytes
        }
        receivedBytes.increment(by: bytes)
        receivedFrames.increment()
    }

    /// Frames and payload bytes sent and received since the mesh was created.
    public var totals: (framesSent: Int, bytesSent: Int, framesReceived: Int, bytesReceived: Int) {
        counters.withLock { $0 }
    }
}
