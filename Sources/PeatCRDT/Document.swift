/// A replicated JSON-like document: a root map holding scalars, maps, lists, text and counters.
///
/// Every local edit is applied at once and collected into a pending change; `commit()` seals it
/// (actor, next sequence number, Lamport op ids, dependencies on the current heads). Remote changes
/// are applied in causal order — ones whose dependencies have not arrived wait in a bounded queue —
/// and duplicates are ignored, so any delivery order, duplication or batching of the same changes
/// gives the same materialised state on every replica.
///
/// Concurrent writes to one map key are all kept: the highest op id wins (counter, then actor bytes)
/// and the others stay readable through `conflicts(_:_:)`. Lists and text order concurrent inserts
/// by RGA. Not thread-safe: own it from one isolation domain (an actor or a mutex).
public final class Document {
    /// This replica's actor: one per store incarnation, never reused.
    public let actor: ActorID

    // Actor table: op ids store indices into it. Index 0 is always `actor`.
    var actors: [ActorID]
    var actorIndex: [ActorID: UInt32]

    // Materialised state.
    var objects: [OpID: ObjectState]
    let root: MapObject
    /// The highest Lamport counter seen; local ops get `maxOp + 1`.
    var maxOp: UInt64 = 0
    /// For LatestOnly snapshots: the root key each nested object lives under, and per root key the
    /// highest op id applied anywhere under it.
    var rootFieldOf: [OpID: String] = [:]
    /// Nesting depth of every object (root 0), bounded by `maximumDepth`.
    var objectDepth: [OpID: UInt8] = [:]
    var fieldVersion: [String: OpID] = [:]
    /// One-entry cache for `rootFieldOf` (edits come in runs on one object). Objects never move.
    var lastFieldLookup: (obj: OpID, field: String) = (.zero, "")

    // History.
    var log: [StoredChange] = []
    /// Per actor: the log index of each of its changes, by `seq - 1 - historyBase[actor]`.
    var actorLog: [[Int32]] = []
    /// Per actor: the highest sequence number applied (the version vector).
    var seqs: [UInt64] = []
    /// Per actor: how many of its first changes are covered by state but not kept as history (compaction).
    var historyBase: [UInt64] = []
    var headIndices: [Int32] = []
    var hashes: [ChangeHash] = []
    var hashIndex: [ChangeHash: Int32]? = nil
    /// Whether the state holds content no change in `log` explains (a merged LatestOnly snapshot, or a
    /// loaded state section): `save()` must then write the state, not only the history.
    var hasUnloggedState = false
    /// Heads whose changes are not in `log` (compaction dropped them): hash -> actor and seq.
    var externalHeads: [ChangeHash: (actor: UInt32, seq: UInt64)] = [:]
    /// Every dropped change hash still referenced as a dependency resolves through here.
    var droppedHashes: [ChangeHash: (actor: UInt32, seq: UInt64)] = [:]

    // The open local change.
    var pending: [Op] = []
    var pendingStart: UInt64 = 0

    // Remote changes waiting for their dependencies.
    var queue: [DecodedChange] = []
    /// Bound on `queue`: a hostile or broken peer cannot make the document buffer without limit.
    public var maximumQueuedChanges = 100_000

    /// Bumped on every state change (local or remote); lets sync tell "changed since I last sent".
    public private(set) var stateVersion: UInt64 = 0
    /// The last LatestOnly snapshot and digest, valid while `stateVersion` is unchanged.
    var snapshotCache: (stateVersion: UInt64, snapshot: [UInt8], digest: [UInt8])? = nil
    /// The last compact (format 2) LatestOnly snapshot, valid while `stateVersion` is unchanged.
    var compactSnapshotCache: (stateVersion: UInt64, snapshot: [UInt8])? = nil

    /// Creates an empty document written by `actor`.
    public init(actor: ActorID) {
        self.actor = actor
        actors = [actor]
        actorIndex = [actor: 0]
        actorLog = [[]]
        seqs = [0]
        historyBase = [0]
        root = MapObject()
        objects = [.zero: .map(root)]
    }

    // MARK: - Actors and ids

    @inline(__always)
    func index(of actor: ActorID) -> UInt32 {
        if let i = actorIndex[actor] { return i }
        let i = UInt32(actors.count)
        actors.append(actor)
        actorIndex[actor] = i
        actorLog.append([])
        seqs.append(0)
        historyBase.append(0)
        return i
    }

    /// The total order on op ids every replica agrees on: counter, then actor bytes.
    @inline(__always)
    func precedes(_ a: OpID, _ b: OpID) -> Bool {
        if a.counter != b.counter { return a.counter < b.counter }
        if a.actor == b.actor { return false }
        return actors[Int(a.actor)] < actors[Int(b.actor)]
    }

    func objectID(_ id: OpID) -> ObjectID {
        id.isZero ? .root : ObjectID(counter: id.counter, actor: actors[Int(id.actor)])
    }

    func opID(_ object: ObjectID) -> OpID? {
        if object.isRoot { return .zero }
        guard let a = actorIndex[object.actor] else { return nil }
        return OpID(counter: object.counter, actor: a)
    }

    // MARK: - Reading

    /// The type of `object`, or `nil` if the document has no such object.
    public func type(of object: ObjectID) -> ObjectType? {
        guard let id = opID(object), let state = objects[id] else { return nil }
        return state.type
    }

    func value(of slot: Slot) -> Value {
        switch slot.value {
        case .scalar(let s): .scalar(s)
        case .object(let t): .object(objectID(slot.id), t)
        }
    }

    func mapObject(_ object: ObjectID) -> MapObject? {
        guard let id = opID(object), case .map(let m)? = objects[id] else { return nil }
        return m
    }

    func listObject(_ object: ObjectID) -> ListObject? {
        guard let id = opID(object), case .list(let l)? = objects[id] else { return nil }
        return l
    }

    func textObject(_ object: ObjectID) -> TextObject? {
        guard let id = opID(object), case .text(let t)? = objects[id] else { return nil }
        return t
    }

    /// The winning value under `key` of a map, or `nil` when the key is absent.
    public func get(_ object: ObjectID, _ key: String) -> Value? {
        guard let m = mapObject(object), let slots = m.entries[key] else { return nil }
        return value(of: slots.winner)
    }

    /// Every concurrent value under `key`, the winner first; more than one means a conflict.
    public func conflicts(_ object: ObjectID, _ key: String) -> [Value] {
        guard let m = mapObject(object), let slots = m.entries[key] else { return [] }
        return slots.all.map(value(of:))
    }

    /// The keys of a map, sorted.
    public func keys(_ object: ObjectID) -> [String] {
        guard let m = mapObject(object) else { return [] }
        return m.entries.keys.sorted()
    }

    /// The number of keys of a map, elements of a list, or characters (Unicode scalars) of a text.
    public func count(_ object: ObjectID) -> Int {
        guard let id = opID(object), let state = objects[id] else { return 0 }
        switch state {
        case .map(let m): return m.entries.count
        case .list(let l): return l.sequence.visibleCount
        case .text(let t): return t.sequence.visibleCount
        }
    }

    /// The element at `index` of a list, or `nil` when out of range.
    public func get(_ object: ObjectID, _ index: Int) -> Value? {
        guard let l = listObject(object), index >= 0, index < l.sequence.visibleCount else { return nil }
        let p = l.sequence.positionOfVisible(index)
        guard let slots = l.sequence.element(at: p).slots else { return nil }
        return value(of: slots.winner)
    }

    /// The visible elements of a list.
    public func elements(_ object: ObjectID) -> [Value] {
        guard let l = listObject(object) else { return [] }
        var out: [Value] = []
        out.reserveCapacity(l.sequence.visibleCount)
        l.sequence.forEachVisible { e in out.append(value(of: e.slots!.winner)) }
        return out
    }

    /// The content of a text object.
    public func text(_ object: ObjectID) -> String {
        guard let t = textObject(object) else { return "" }
        return t.string
    }

    /// The version vector: per actor, the highest sequence number this document contains.
    public var version: VersionVector {
        var entries: [ActorID: UInt64] = [:]
        for (i, s) in seqs.enumerated() where s > 0 { entries[actors[i]] = s }
        return VersionVector(entries)
    }

    /// Number of changes kept as history (compaction drops them).
    public var historyCount: Int { log.count }

    func bumpStateVersion() { stateVersion &+= 1 }
}
