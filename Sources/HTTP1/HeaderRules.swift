/// Header rules shared by both directions of the proxy.
public enum HeaderRules {
    /// Hop-by-hop by name (RFC 9110 §7.6.1), whatever the message's
    /// `Connection` field adds.
    public static func isHopByHop(name: [UInt8]) -> Bool {
        FieldKind.classify(name).isHopByHop
    }

    /// The names a `Connection` value lists, lower-cased, for dropping them.
    public static func connectionOptions(_ value: ArraySlice<UInt8>) -> [[UInt8]] {
        var names: [[UInt8]] = []
        HeadParser.forEachListElement(value) { element in
            if !element.isEmpty { names.append(element.map(ASCII.lower)) }
        }
        return names
    }
}
