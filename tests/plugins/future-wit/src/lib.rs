//! Exports `salve:plugin/plugin@0.2.0`; salve must refuse to load it and
//! say which contract versions it accepts.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "wit", world: "ecosystem" });

    struct Future;

    impl exports::salve::plugin::plugin::Guest for Future {
        fn info() -> String {
            "future".into()
        }
    }

    export!(Future);
}
