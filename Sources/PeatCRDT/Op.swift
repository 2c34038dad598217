/// What an operation does.
enum OpAction: Equatable {
    /// Creates an empty object; its id is the operation's id.
    case make(ObjectType)
    /// Writes a scalar.
    case set(ScalarValue)
    /// Removes the values named in `pred` (map key or list element); for text, marks characters deleted.
    case delete
    /// Adds to the counter named in `pred`.
    case increment(Int64)
    /// Inserts `width` Unicode scalars into a text, with consecutive ids, each after the previous.
    case text(String, width: UInt32)

    /// How many op ids (Lamport counters) the operation uses.
    var width: UInt64 {
        if case .text(_, let w) = self { return UInt64(w) }
        return 1
    }
}

/// Where an operation applies inside its object.
enum OpKey: Equatable {
    /// A map key.
    case map(String)
    /// A sequence element: the element's id, or zero for "the start" (inserts only).
    case seq(OpID)
}

/// The operations an operation supersedes — almost always none or one, so neither allocates.
enum Pred: Equatable {
    case none
    case one(OpID)
    case many([OpID])

    init(_ ids: [OpID]) {
        switch ids.count {
        case 0: self = .none
        case 1: self = .one(ids[0])
        default: self = .many(ids)
        }
    }

    var isEmpty: Bool {
        if case .none = self { return true }
        return false
    }

    func contains(_ id: OpID) -> Bool {
        switch self {
        case .none: false
        case .one(let p): p == id
        case .many(let ps): ps.contains(id)
        }
    }

    func forEach(_ body: (OpID) throws -> Void) rethrows {
        switch self {
        case .none: break
        case .one(let p): try body(p)
        case .many(let ps): for p in ps { try body(p) }
        }
    }

    var array: [OpID] {
        switch self {
        case .none: []
        case .one(let p): [p]
        case .many(let ps): ps
        }
    }
}

/// One operation of a change. Its id is implicit: the change's start op plus the widths before it.
struct Op: Equatable {
    var obj: OpID
    var key: OpKey
    /// True when the operation inserts a new sequence element after `key`'s element.
    var insert: Bool
    var action: OpAction
    var pred: Pred
}

/// A change as the document keeps it: ids use the document's actor indices.
struct StoredChange {
    var actor: UInt32
    var seq: UInt64
    var startOp: UInt64
    /// Milliseconds since the epoch when the change was made (0 when unknown).
    var time: Int64
    /// Log indices of the changes by *other* actors this one depends on; the actor's previous change is implied.
    var deps: [Int32]
    var ops: [Op]
    /// Dependencies on changes whose history compaction dropped (known only by hash).
    var externalDeps: [ChangeHash] = []

    var width: UInt64 {
        var w: UInt64 = 0
        for op in ops { w += op.action.width }
        return w
    }
}
