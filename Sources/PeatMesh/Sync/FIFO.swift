/// A first-in, first-out queue that pops in O(1) and reuses its storage once drained.
struct FIFO<Element: Equatable>: Equatable {
    private var items: [Element] = []
    private var head = 0

    mutating func push(_ item: Element) {
        items.append(item)
    }

    mutating func pop() -> Element? {
        guard head < items.count else { return nil }
        let item = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        }
        return item
    }

    /// Puts `item` back at the front (it leaves next).
    mutating func pushFront(_ item: Element) {
        if head > 0 {
            head -= 1
            items[head] = item
        } else {
            items.insert(item, at: 0)
        }
    }

    var isEmpty: Bool { head == items.count }

    func contains(where predicate: (Element) -> Bool) -> Bool {
        items[head...].contains(where: predicate)
    }
}

/// A FIFO of distinct elements: pushing one already waiting keeps its place.
struct DistinctFIFO<Element: Hashable>: Equatable {
    private var order = FIFO<Element>()
    private var members: Set<Element> = []

    /// Returns false when the element was already waiting.
    @discardableResult
    mutating func push(_ item: Element) -> Bool {
        guard members.insert(item).inserted else { return false }
        order.push(item)
        return true
    }

    mutating func pop() -> Element? {
        guard let item = order.pop() else { return nil }
        members.remove(item)
        return item
    }

    var isEmpty: Bool { members.isEmpty }
}
