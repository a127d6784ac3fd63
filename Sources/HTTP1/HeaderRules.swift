/// Header rules shared by both directions of the proxy.
public enum HeaderRules {
    /// The names a `Connection` value lists, lower-cased, for dropping them.
    public static func connectionOptions(_ value: ArraySlice<UInt8>) -> [[UInt8]] {
        var names: [[UInt8]] = []
        HeadParser.forEachListElement(value) { element in
            if !element.isEmpty { names.append(element.map(ASCII.lower)) }
        }
        return names
    }
}
