/// LatestOnly snapshots: the history-free state of the root fields, each with the id of its last
/// write, merged field by field (the later write wins; equal versions break ties on content).
extension Document {
    /// The version of a root field: the highest op id applied anywhere under it (or its tombstone).
    func version(ofField key: String) -> OpID? {
        var v = fieldVersion[key]
        if let slots = root.entries[key] {
            for s in slots.all where v == nil || precedes(v!, s.id) { v = s.id }
        }
        if let t = root.tombstones[key], v == nil || precedes(v!, t) { v = t }
        return v
    }

    /// The snapshot: every root field (live or deleted) with its version and content.
    ///
    /// Format 1 names each field's actor in full (16 bytes) and is the canonical form the snapshot
    /// digest is taken of; format 2 (`compact`) lists the actors once and refers to them by index,
    /// which makes a few-field document's snapshot about half as large on the wire. Both merge the same.
    public func latestSnapshot(compact: Bool = false) -> [UInt8] {
        commit()
        var w = ByteWriter(capacity: 64 + root.entries.count * 24)
        w.byte(compact ? 2 : 1)
        let fields = Set(root.entries.keys).union(root.tombstones.keys).sorted().compactMap { k in version(ofField: k).map { (k, $0) } }
        var table: [UInt32: Int] = [:]
        if compact {
            var used: [UInt32] = []
            for (_, v) in fields where table[v.actor] == nil {
                table[v.actor] = used.count
                used.append(v.actor)
            }
            w.uleb(used.count)
            for actor in used {
                w.uint64BigEndian(actors[Int(actor)].high)
                w.uint64BigEndian(actors[Int(actor)].low)
            }
        }
        w.uleb(fields.count)
        for (k, v) in fields {
            w.string(k)
            w.uleb(v.counter)
            if let index = table[v.actor] {
                w.uleb(index)
            } else {
                let a = actors[Int(v.actor)]
                w.uint64BigEndian(a.high)
                w.uint64BigEndian(a.low)
            }
            if let slots = root.entries[k] {
                w.byte(1)
                writeTree(slots.winner, into: &w)
            } else {
                w.byte(0)
            }
        }
        return w.bytes
    }

    func writeTree(_ slot: Slot, into w: inout ByteWriter) {
        switch slot.value {
        case .scalar(let s):
            OpCodec.writeScalar(s, into: &w)
        case .object:
            switch objects[slot.id]! {
            case .map(let m):
                w.byte(0x20)
                w.uleb(m.entries.count)
                for (k, s) in m.entries.sorted(by: { $0.key < $1.key }) {
                    w.string(k)
                    writeTree(s.winner, into: &w)
                }
            case .list(let l):
                w.byte(0x21)
                w.uleb(l.sequence.visibleCount)
                l.sequence.forEachVisible { writeTree($0.slots!.winner, into: &w) }
            case .text(let t):
                w.byte(0x22)
                w.string(t.string)
            }
        }
    }

    /// A content tree read from a snapshot, before it is written into the document.
    indirect enum Tree {
        case scalar(ScalarValue)
        case map([(String, Tree)])
        case list([Tree])
        case text(String)

        /// The object type this tree creates; `nil` for a scalar.
        var objectType: ObjectType? {
            switch self {
            case .scalar: nil
            case .map: .map
            case .list: .list
            case .text: .text
            }
        }
    }

    static func readTree(_ r: inout ByteReader, depth: Int) throws(PeatCRDTError) -> Tree {
        guard depth <= maximumDepth else { throw ByteReader.malformed("snapshot nested deeper than \(maximumDepth)") }
        let tag = try r.byte()
        switch tag {
        case 0x20:
            let n = try r.count(minimumItemSize: 2)
            var members: [(String, Tree)] = []
            members.reserveCapacity(n)
            for _ in 0..<n { members.append((try r.string(), try readTree(&r, depth: depth + 1))) }
            return .map(members)
        case 0x21:
            let n = try r.count()
            var items: [Tree] = []
            items.reserveCapacity(n)
            for _ in 0..<n { items.append(try readTree(&r, depth: depth + 1)) }
            return .list(items)
        case 0x22:
            return .text(try r.string())
        default:
            guard let v = try OpCodec.readScalar(code: tag, from: &r) else {
                throw ByteReader.malformed("unknown snapshot value tag")
            }
            return .scalar(v)
        }
    }

    /// Merges a snapshot from `latestSnapshot()`: each field whose incoming version is later (or equal
    /// with greater content) replaces the local one; an incoming deletion removes the field only if it
    /// is later than the local write, so a stale snapshot never resurrects a deleted field.
    ///
    /// - Returns: whether the document changed.
    /// - Throws: `PeatCRDTError` for malformed bytes; nothing is changed then.
    @discardableResult
    public func mergeLatestSnapshot(_ bytes: [UInt8]) throws(PeatCRDTError) -> Bool {
        commit()
        var r = ByteReader(bytes)
        let format = try r.byte()
        guard format == 1 || format == 2 else { throw PeatCRDTError(.unsupportedVersion, "snapshot format") }
        var table: [ActorID] = []
        if format == 2 {
            let count = try r.count(minimumItemSize: 16)
            table.reserveCapacity(count)
            for _ in 0..<count { table.append(ActorID(high: try r.uint64BigEndian(), low: try r.uint64BigEndian())) }
        }
        let n = try r.count(minimumItemSize: format == 2 ? 4 : 19)
        var fields: [(key: String, counter: UInt64, actor: ActorID, tree: Tree?, bytes: ArraySlice<UInt8>)] = []
        fields.reserveCapacity(n)
        for _ in 0..<n {
            let key = try r.string()
            let counter = try r.uleb()
            guard counter > 0, counter < UInt64.max / 2 else { throw ByteReader.malformed("field version out of range") }
            let actor: ActorID
            if format == 2 {
                let index = try r.uleb()
                guard index < UInt64(table.count) else { throw ByteReader.malformed("actor index out of range") }
                actor = table[Int(index)]
            } else {
                actor = ActorID(high: try r.uint64BigEndian(), low: try r.uint64BigEndian())
            }
            let start = r.offset
            let live = try r.byte()
            guard live <= 1 else { throw ByteReader.malformed("unknown field tag") }
            let tree = live == 1 ? try Self.readTree(&r, depth: 1) : nil
            fields.append((key, counter, actor, tree, bytes[start..<r.offset]))
        }
        guard r.isAtEnd else { throw ByteReader.malformed("trailing bytes after snapshot") }
        // A field's object takes the field's version as its id: refuse a snapshot that would give two
        // fields one object, or take the id of an object another field holds.
        var objectFields: [ActorID: [UInt64: String]] = [:]
        for f in fields where f.tree?.objectType != nil {
            if let other = objectFields[f.actor]?[f.counter], other != f.key { throw ByteReader.malformed("two fields with one object id") }
            objectFields[f.actor, default: [:]][f.counter] = f.key
            if let a = actorIndex[f.actor], case let id = OpID(counter: f.counter, actor: a), objects[id] != nil, rootFieldOf[id] != f.key {
                throw ByteReader.malformed("a field's object id belongs to another field")
            }
        }
        // The local ids of nested objects come after every incoming version, so none is one of them.
        if let highest = fields.map(\.counter).max(), highest > maxOp { maxOp = highest }
        var changed = false
        for f in fields {
            let v = OpID(counter: f.counter, actor: index(of: f.actor))
            if let local = version(ofField: f.key) {
                if precedes(v, local) { continue }
                if local == v {
                    var mine = ByteWriter(capacity: 32)
                    if let slots = root.entries[f.key] {
                        mine.byte(1)
                        writeTree(slots.winner, into: &mine)
                    } else {
                        mine.byte(0)
                    }
                    guard mine.bytes.lexicographicallyPrecedes(f.bytes) else { continue }
                }
            }
            replaceField(f.key, version: v, with: f.tree)
            changed = true
        }
        if changed { bumpStateVersion() }
        return changed
    }

    func removeSubtree(_ id: OpID) {
        guard let state = objects.removeValue(forKey: id) else { return }
        rootFieldOf[id] = nil
        lastFieldLookup = (.zero, "")
        objectDepth[id] = nil
        func slots(_ s: Slots?) {
            guard let s else { return }
            for slot in s.all { if case .object = slot.value { removeSubtree(slot.id) } }
        }
        switch state {
        case .map(let m): for s in m.entries.values { slots(s) }
        case .list(let l): l.sequence.forEach { slots($0.slots) }
        case .text: break
        }
    }

    func replaceField(_ key: String, version v: OpID, with tree: Tree?) {
        if let old = root.entries[key] {
            for slot in old.all { if case .object = slot.value { removeSubtree(slot.id) } }
        }
        if v.counter > maxOp { maxOp = v.counter }
        hasUnloggedState = true
        fieldVersion[key] = v
        guard let tree else {
            root.entries[key] = nil
            root.tombstones[key] = v
            return
        }
        root.tombstones[key] = nil
        root.entries[key] = Slots(winner: slot(for: tree, id: v, parent: .zero, key: key))
    }

    /// A slot holding `tree` under op id `id`; a nested object is created and filled.
    func slot(for tree: Tree, id: OpID, parent: OpID, key: String?) -> Slot {
        if case .scalar(let s) = tree { return Slot(id: id, value: .scalar(s)) }
        let type = tree.objectType!
        createObject(type, id: id, parent: parent, key: key)
        fill(id, with: tree)
        return Slot(id: id, value: .object(type))
    }

    /// Writes a snapshot tree into a fresh object with local ids that belong to no change: the field's
    /// version stays the sender's, so equal replicas keep equal snapshots.
    func fill(_ id: OpID, with tree: Tree) {
        func fresh() -> OpID {
            maxOp += 1
            return OpID(counter: maxOp, actor: 0)
        }
        switch (objects[id], tree) {
        case (.map(let m)?, .map(let members)):
            for (k, item) in members { m.entries[k] = Slots(winner: slot(for: item, id: fresh(), parent: id, key: nil)) }
        case (.list(let l)?, .list(let items)):
            for item in items {
                let s = slot(for: item, id: fresh(), parent: id, key: nil)
                let end = l.sequence.endPosition
                l.sequence.insert(ListElement(id: s.id, slots: Slots(winner: s)), at: end)
            }
        case (.text(let t)?, .text(let s)):
            for scalar in s.unicodeScalars {
                let end = t.sequence.endPosition
                t.sequence.insert(TextElement(id: fresh(), scalar: scalar, isVisible: true), at: end)
            }
        default: break
        }
    }
}
