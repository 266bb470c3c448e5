"""Serialization cost per message (encode + decode), unimq codecs vs the alternatives.

    python -m bench.codecs [--number N]

Prints nanoseconds per round trip for the small model (16-char name, an int,
a ~200-char text) and the seeds' C struct, and the ratios the project tracks:
unimq JSON / pydantic-core's own JSON round trip and / TypeAdapter's
(target <= 1.1), and unimq cstruct / unimq JSON for the seed struct (target < 1).
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import struct
import timeit
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter

from unimq import cstruct
from unimq.typed._codecs import JSONCodec


class Small(BaseModel):
    name: str
    count: int
    text: str


class Seed(BaseModel):
    mtext: Annotated[str, cstruct.char(256)]
    myname: Annotated[str, cstruct.char(16)]
    seq: Annotated[int, cstruct.int32]


SMALL = Small(name="sixteen-chars-ab", count=12345, text="lorem ipsum " * 16 + "dolor")
SEED = Seed(mtext="hello from the seed programs " * 4, myname="producer-07", seq=4242)


def cases() -> dict[str, dict[str, Callable[[], Any]]]:
    small_json: JSONCodec[Small] = JSONCodec(Small)
    small_adapter = TypeAdapter(Small)
    seed_json: JSONCodec[Seed] = JSONCodec(Seed)
    seed_struct = cstruct.CStructCodec(Seed)
    small_core_out = Small.__pydantic_serializer__.to_json
    small_core_in = Small.__pydantic_validator__.validate_json
    by_hand = struct.Struct("=256s16si4x")

    def seed_pack(seed: Seed) -> bytes:
        return by_hand.pack(seed.mtext.encode(), seed.myname.encode(), seed.seq)

    def seed_by_hand(body: bytes) -> Seed:
        mtext, myname, seq = by_hand.unpack(body)
        return Seed.model_validate(
            {
                "mtext": mtext.partition(b"\0")[0].decode(),
                "myname": myname.partition(b"\0")[0].decode(),
                "seq": seq,
            }
        )

    table: dict[str, dict[str, Callable[[], Any]]] = {
        "small model": {
            "unimq JSONCodec": lambda: small_json.decode(small_json.encode(SMALL)),
            "pydantic model_dump_json/model_validate_json": lambda: Small.model_validate_json(
                SMALL.model_dump_json()
            ),
            "pydantic TypeAdapter dump_json/validate_json": lambda: small_adapter.validate_json(
                small_adapter.dump_json(SMALL)
            ),
            "pydantic-core to_json/validate_json": lambda: small_core_in(small_core_out(SMALL)),
            "pickle (model)": lambda: pickle.loads(pickle.dumps(SMALL)),
            "json module (dict, no validation)": lambda: json.loads(json.dumps(SMALL.__dict__)),
        },
        "seed struct": {
            "unimq CStructCodec": lambda: seed_struct.decode(seed_struct.encode(SEED)),
            "unimq JSONCodec": lambda: seed_json.decode(seed_json.encode(SEED)),
            "pydantic model_dump_json/model_validate_json": lambda: Seed.model_validate_json(
                SEED.model_dump_json()
            ),
            "struct pack/unpack + model_validate": lambda: seed_by_hand(seed_pack(SEED)),
            "pickle (model)": lambda: pickle.loads(pickle.dumps(SEED)),
        },
    }
    try:
        import msgspec
    except ImportError:
        pass
    else:

        class SmallStruct(msgspec.Struct):
            name: str
            count: int
            text: str

        class SeedStruct(msgspec.Struct):
            mtext: str
            myname: str
            seq: int

        value = SmallStruct(SMALL.name, SMALL.count, SMALL.text)
        enc, dec = msgspec.json.Encoder(), msgspec.json.Decoder(SmallStruct)
        table["small model"]["msgspec Struct JSON"] = lambda: dec.decode(enc.encode(value))
        seed = SeedStruct(SEED.mtext, SEED.myname, SEED.seq)
        seed_dec = msgspec.json.Decoder(SeedStruct)
        table["seed struct"]["msgspec Struct JSON"] = lambda: seed_dec.decode(enc.encode(seed))
    return table


def run(number: int, rounds: int = 7) -> dict[str, dict[str, float]]:
    """Median nanoseconds per call of every case.

    The cases are interleaved: each round times every case once, so a noisy
    moment on a shared machine slows one round of all cases, not one case.
    """
    table = cases()
    samples: dict[str, dict[str, list[float]]] = {
        group: {name: [] for name in fns} for group, fns in table.items()
    }
    for _ in range(rounds):
        for group, fns in table.items():
            for name, fn in fns.items():
                samples[group][name].append(timeit.timeit(fn, number=number) / number * 1e9)
    return {
        group: {name: statistics.median(values) for name, values in rows.items()}
        for group, rows in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=20000)
    args = parser.parse_args()
    results = run(args.number)
    for group, rows in results.items():
        print(f"\n{group}: ns per encode+decode")
        for name, ns in sorted(rows.items(), key=lambda kv: kv[1]):
            print(f"  {ns:9.0f}  {name}")
    small = results["small model"]
    seed = results["seed struct"]
    print(
        "\nunimq JSON / pydantic-core JSON: "
        f"{small['unimq JSONCodec'] / small['pydantic-core to_json/validate_json']:.2f}x"
        "\nunimq JSON / TypeAdapter JSON: "
        f"{small['unimq JSONCodec'] / small['pydantic TypeAdapter dump_json/validate_json']:.2f}x"
        f"\nunimq cstruct / unimq JSON (seed struct): "
        f"{seed['unimq CStructCodec'] / seed['unimq JSONCodec']:.2f}x"
    )


if __name__ == "__main__":
    main()
