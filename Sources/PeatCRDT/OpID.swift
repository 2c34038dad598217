/// A Lamport operation id inside one document: a counter and an index into the document's actor table.
///
/// Indices are local to a document (replicas number actors differently), so ids are compared through
/// `Document.precedes(_:_:)`, which breaks counter ties by the actors' bytes.
struct OpID: Hashable, Sendable {
    var counter: UInt64
    var actor: UInt32

    /// The root map's id and the "head" reference of a sequence: counter 0 is never issued.
    static let zero = OpID(counter: 0, actor: 0)

    var isZero: Bool { counter == 0 }
}

/// A reference to one object of a document that stays valid across replicas: the id of the operation
/// that created it (counter and actor), or the root map.
public struct ObjectID: Hashable, Sendable, CustomStringConvertible {
    /// The creating operation's counter; 0 for the root.
    public let counter: UInt64
    /// The creating operation's actor (meaningless for the root).
    public let actor: ActorID

    /// The root map of every document.
    public static let root = ObjectID(counter: 0, actor: ActorID(high: 0, low: 0))

    public init(counter: UInt64, actor: ActorID) {
        self.counter = counter
        self.actor = actor
    }

    public var isRoot: Bool { counter == 0 }

    public var description: String { isRoot ? "_root" : "\(counter)@\(actor)" }
}

/// The kind of an object in a document.
public enum ObjectType: UInt8, Hashable, Sendable {
    case map = 0
    case list = 1
    case text = 2
}
