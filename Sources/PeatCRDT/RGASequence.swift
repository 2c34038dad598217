/// One element of a replicated sequence (a list element or a text character).
protocol SequenceElement {
    var id: OpID { get }
    var isVisible: Bool { get }
}

/// A chunk of consecutive elements; chunks keep visible-element counts so positions are found
/// without scanning the whole sequence.
final class SequenceChunk<Element: SequenceElement> {
    var elements: ContiguousArray<Element>
    var visible: Int

    init(elements: ContiguousArray<Element>, visible: Int) {
        self.elements = elements
        self.visible = visible
    }
}

/// The element order of a list or text: RGA (replicated growable array) over chunked storage.
///
/// Elements are kept in document order, deleted ones included (tombstones keep the order stable for
/// later concurrent inserts). A new element goes right after its reference element, skipping over
/// elements with a greater id — the classic RGA rule, which every replica applies identically.
/// Two caches make the common cases cheap: the last visible-index lookup (editing is local) and
/// an element-id → chunk index (remote inserts name their reference element by id).
struct RGASequence<Element: SequenceElement> {
    typealias Chunk = SequenceChunk<Element>

    static var maximumChunkSize: Int { 128 }

    private(set) var chunks: [Chunk] = []
    private var chunkOf: [OpID: Chunk] = [:]
    private(set) var visibleCount = 0
    private(set) var totalCount = 0
    // The visible-position cursor: `cursorVisibleBefore` visible elements precede chunk `cursorChunk`.
    private var cursorChunk = 0
    private var cursorVisibleBefore = 0
    // Where the last id lookup found its chunk (remote edits are local too).
    private var lookupHint = 0

    /// A position: chunk index and offset inside the chunk.
    struct Position {
        var chunk: Int
        var offset: Int
    }

    func element(at p: Position) -> Element { chunks[p.chunk].elements[p.offset] }

    /// The position after the last element (appending when rebuilding from a snapshot or saved state).
    var endPosition: Position {
        Position(chunk: max(chunks.count - 1, 0), offset: chunks.last?.elements.count ?? 0)
    }

    func contains(_ id: OpID) -> Bool { chunkOf[id] != nil }

    /// The position of the `index`-th visible element (0-based). Precondition: `index < visibleCount`.
    mutating func positionOfVisible(_ index: Int) -> Position {
        if cursorChunk >= chunks.count {
            cursorChunk = 0
            cursorVisibleBefore = 0
        }
        var c = cursorChunk
        var before = cursorVisibleBefore
        while index < before {
            c -= 1
            before -= chunks[c].visible
        }
        while index >= before + chunks[c].visible {
            before += chunks[c].visible
            c += 1
        }
        cursorChunk = c
        cursorVisibleBefore = before
        var remaining = index - before
        let elements = chunks[c].elements
        var o = 0
        while true {
            if elements[o].isVisible {
                if remaining == 0 { return Position(chunk: c, offset: o) }
                remaining -= 1
            }
            o += 1
        }
    }

    /// The position of the element with `id`, if present.
    mutating func position(of id: OpID) -> Position? {
        guard let chunk = chunkOf[id] else { return nil }
        let c = chunkIndex(of: chunk)
        lookupHint = c
        let elements = chunk.elements
        var o = elements.count - 1
        // Recent elements are referenced most, and they tend to sit at the end of their chunk.
        while o >= 0 {
            if elements[o].id == id { return Position(chunk: c, offset: o) }
            o -= 1
        }
        return nil
    }

    private func chunkIndex(of chunk: Chunk) -> Int {
        // Start at the last hit: edits are local, so the chunk is usually nearby.
        let n = chunks.count
        let start = min(lookupHint, n - 1)
        var distance = 0
        while distance < n {
            let up = start + distance
            if up < n, chunks[up] === chunk { return up }
            let down = start - distance
            if down >= 0, chunks[down] === chunk { return down }
            distance += 1
        }
        preconditionFailure("chunk index out of sync")
    }

    /// Where an element inserted after `reference` (zero = the start) with id `id` belongs.
    ///
    /// - Parameter precedes: the document's total order on op ids.
    mutating func insertionPosition(after reference: OpID, id: OpID, precedes: (OpID, OpID) -> Bool) -> Position? {
        var p: Position
        if reference.isZero {
            p = Position(chunk: 0, offset: 0)
        } else {
            guard let r = position(of: reference) else { return nil }
            p = Position(chunk: r.chunk, offset: r.offset + 1)
        }
        // Skip elements with a greater id (later concurrent inserts at the same place, and their descendants).
        while p.chunk < chunks.count {
            let elements = chunks[p.chunk].elements
            if p.offset >= elements.count {
                p = Position(chunk: p.chunk + 1, offset: 0)
                continue
            }
            if precedes(elements[p.offset].id, id) { break }
            p.offset += 1
        }
        if p.chunk >= chunks.count {
            // Append at the very end: after the last element of the last chunk.
            if chunks.isEmpty { return Position(chunk: 0, offset: 0) }
            return Position(chunk: chunks.count - 1, offset: chunks[chunks.count - 1].elements.count)
        }
        return p
    }

    /// Position right after the `index`-th visible element, or the very start for `index == -1`.
    mutating func positionAfterVisible(_ index: Int) -> Position {
        if index < 0 { return Position(chunk: 0, offset: 0) }
        var p = positionOfVisible(index)
        p.offset += 1
        return p
    }

    /// Inserts `element` at `position` (as returned by the lookups above).
    mutating func insert(_ element: Element, at position: Position) {
        let visible = element.isVisible ? 1 : 0
        totalCount += 1
        visibleCount += visible
        if chunks.isEmpty {
            let chunk = Chunk(elements: [element], visible: visible)
            chunks.append(chunk)
            chunkOf[element.id] = chunk
            return
        }
        var c = position.chunk
        var o = position.offset
        // Appending at the end of a full chunk: start the next one instead of splitting.
        if o == chunks[c].elements.count, chunks[c].elements.count >= Self.maximumChunkSize {
            if c + 1 < chunks.count, chunks[c + 1].elements.count < Self.maximumChunkSize {
                c += 1
                o = 0
            } else {
                let chunk = Chunk(elements: [element], visible: visible)
                chunks.insert(chunk, at: c + 1)
                chunkOf[element.id] = chunk
                if c + 1 <= cursorChunk {
                    cursorChunk += 1
                    cursorVisibleBefore += visible
                }
                if c + 1 <= lookupHint { lookupHint += 1 }
                return
            }
        }
        let chunk = chunks[c]
        chunk.elements.insert(element, at: o)
        chunk.visible += visible
        chunkOf[element.id] = chunk
        if c < cursorChunk { cursorVisibleBefore += visible }
        if chunk.elements.count > Self.maximumChunkSize { split(c) }
    }

    private mutating func split(_ c: Int) {
        let chunk = chunks[c]
        let half = chunk.elements.count / 2
        let moved = ContiguousArray(chunk.elements[half...])
        chunk.elements.removeSubrange(half...)
        var movedVisible = 0
        for e in moved where e.isVisible { movedVisible += 1 }
        chunk.visible -= movedVisible
        let next = Chunk(elements: moved, visible: movedVisible)
        for e in moved { chunkOf[e.id] = next }
        chunks.insert(next, at: c + 1)
        // The cursor's "visible before" count is unchanged by a split; only its index may shift.
        if c < cursorChunk { cursorChunk += 1 }
        if c < lookupHint { lookupHint += 1 }
    }

    /// Replaces the element at `position` (same id), keeping the visible counts right.
    mutating func update(at position: Position, _ body: (inout Element) -> Void) {
        let chunk = chunks[position.chunk]
        let wasVisible = chunk.elements[position.offset].isVisible
        body(&chunk.elements[position.offset])
        let isVisible = chunk.elements[position.offset].isVisible
        if wasVisible != isVisible {
            let delta = isVisible ? 1 : -1
            chunk.visible += delta
            visibleCount += delta
            if position.chunk < cursorChunk { cursorVisibleBefore += delta }
        }
    }

    /// Every element in order, deleted ones included.
    func forEach(_ body: (Element) throws -> Void) rethrows {
        for chunk in chunks {
            for e in chunk.elements { try body(e) }
        }
    }

    /// Visible elements in order.
    func forEachVisible(_ body: (Element) throws -> Void) rethrows {
        for chunk in chunks where chunk.visible > 0 {
            for e in chunk.elements where e.isVisible { try body(e) }
        }
    }
}
