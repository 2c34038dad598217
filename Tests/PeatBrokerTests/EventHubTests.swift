import Testing

@testable import PeatBroker

struct EventHubTests {
    @Test func clientThatFallsBehindIsMarkedAndItsStreamEnds() async {
        let hub = EventHub(bufferSize: 4)
        let slow = hub.subscribe()
        let fast = hub.subscribe()
        var fastEvents = fast.events.makeAsyncIterator()
        for index in 0..<10 {
            hub.publish(.peerConnected(peerID: "p\(index)"))
            #expect(await fastEvents.next() == .peerConnected(peerID: "p\(index)"))
        }
        var received: [BrokerEvent] = []
        for await event in slow.events { received.append(event) }
        #expect(received.count == 4, "the buffered events, then the end")
        #expect(hub.release(slow.id))
        #expect(!hub.release(fast.id))
    }
}
