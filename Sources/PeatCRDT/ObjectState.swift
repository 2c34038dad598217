/// A value held under a map key or in a list element, with the id of the operation that wrote it.
struct Slot: Equatable {
    var id: OpID
    var value: SlotValue
}

enum SlotValue: Equatable {
    case scalar(ScalarValue)
    /// A nested object; its id is the slot's id.
    case object(ObjectType)
}

/// The values currently held by one key: the winner first, concurrent losers (conflicts) after.
struct Slots {
    var winner: Slot
    var others: [Slot] = []

    var count: Int { others.count + 1 }

    var all: [Slot] { [winner] + others }
}

final class MapObject {
    var entries: [String: Slots] = [:]
    /// Keys whose last visible values were deleted, with the deleting op's id.
    var tombstones: [String: OpID] = [:]

    init() {}
}

struct ListElement: SequenceElement {
    let id: OpID
    var slots: Slots?
    var isVisible: Bool { slots != nil }
}

struct TextElement: SequenceElement {
    let id: OpID
    let scalar: Unicode.Scalar
    var isVisible: Bool
}

final class ListObject {
    var sequence = RGASequence<ListElement>()
    init() {}
}

final class TextObject {
    var sequence = RGASequence<TextElement>()
    init() {}

    /// The visible characters.
    var string: String {
        var scalars = String.UnicodeScalarView()
        sequence.forEachVisible { scalars.append($0.scalar) }
        return String(scalars)
    }
}

/// The live state of one object of a document.
enum ObjectState {
    case map(MapObject)
    case list(ListObject)
    case text(TextObject)

    var type: ObjectType {
        switch self {
        case .map: .map
        case .list: .list
        case .text: .text
        }
    }
}
