from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from treefork.core.interpolate import (
    MAX_ENVIRONMENT_VALUE,
    VALUES_DIR_VARIABLE,
    Reference,
    RenderedShell,
    item_scope,
    references,
    render_shell,
    render_text,
    resolve,
    stringify,
)
from treefork.errors import InterpolationError

# --- running rendered scripts for real ------------------------------------------------


def run_bash(rendered: RenderedShell, cwd: Path) -> str:
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8", **rendered.env}
    if rendered.files:
        values = cwd / ".values"
        values.mkdir()
        for name, content in rendered.files.items():
            (values / name).write_bytes(content.encode("utf-8"))
        env[VALUES_DIR_VARIABLE] = str(values)
    completed = subprocess.run(
        ["bash", "-c", rendered.script],
        cwd=cwd,
        env=env,
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode()
    return completed.stdout.decode("utf-8")


def shell_output(template: str, scope: dict[str, Any]) -> tuple[str, bool]:
    """Run the rendered template in a fresh directory; (stdout, canary file created)."""
    with tempfile.TemporaryDirectory() as directory:
        cwd = Path(directory)
        output = run_bash(render_shell(template, scope), cwd)
        return output, (cwd / "canary").exists()


PAYLOADS = [
    "$(touch canary)",
    "`touch canary`",
    "'; touch canary; '",
    '"; touch canary; "',
    "a\nEOF\ntouch canary\nEOF\n",
    "\tEOF\ntouch canary",
    "TREEFORK_EOF_0\n$(touch canary)",
    "${HOME}",
    "$((1+1))",
    "&& touch canary ||",
    "-n",
    "--help",
    "\\",
    "back\\slash\\",
    "\\'\\\"",
    "a[$(touch canary)]",
    "\n\n",
    " leading and trailing ",
    "*",
    "~",
    "é ü ☃ 你好 🎉",
    "!!",
    "{a,b}",
    "'\"'\"",
    "\r\n",
    "",
]
"""Values crafted to break naive quoting."""

texts = st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"))
values = st.one_of(
    texts,
    st.sampled_from(PAYLOADS),
    st.lists(st.one_of(st.sampled_from(PAYLOADS), texts), min_size=2, max_size=4).map("".join),
)

CONTEXTS = {
    "bare": ("printf '%s' ${item}", "{}"),
    "word": ("printf '%s' x${item}y", "x{}y"),
    "single": ("printf '%s' '${item}'", "{}"),
    "single_in_word": ("printf '%s' 'a ${item} b'", "a {} b"),
    "double": ('printf "%s" "${item}"', "{}"),
    "double_in_text": ('printf "%s" "<${item}> $((1+1))"', "<{}> 2"),
    "ansi": ("printf '%s' $'<${item}>'", "<{}>"),
    "heredoc": ("cat <<EOF\n${item}\nEOF", "{}\n"),
    "heredoc_quoted": ("cat <<'EOF'\n${item} $HOME `x`\nEOF", "{} $HOME `x`\n"),
    "heredoc_double_quoted": ('cat <<"EOF"\n${item}\nEOF', "{}\n"),
    "heredoc_backslash": ("cat <<\\EOF\n${item}\nEOF", "{}\n"),
    "heredoc_tabs": ("cat <<-EOF\n\t${item}\n\tEOF", "{}\n"),
    "heredoc_tabs_quoted": ("cat <<-'EOF'\n\t${item}\n\tEOF", "{}\n"),
    "two_heredocs": (
        "cat <<A; cat <<'B'\n${item}\nA\n${item}\nB",
        "{}\n{}\n",
    ),
    "command_substitution": (
        "x=$(printf '%s' ${item}; printf .); printf '%s' \"${x%.}\"",
        "{}",
    ),
    "nested_substitution": (
        "x=\"$(printf '%s' \"$(printf '%s' '${item}'; printf .)\")\"; printf '%s' \"${x%.}\"",
        "{}",
    ),
    "backticks": ("x=`printf '%s' ${item}; printf .`; printf '%s' \"${x%.}\"", "{}"),
    "heredoc_in_substitution": (
        "x=$(cat <<'EOF'\n${item}\nEOF\nprintf .); printf '%s' \"${x%.}\"",
        "{}\n",
    ),
    "shell_default": ('printf "%s" "${UNSET_VAR:-${item}}"', "{}"),
    "single_inside_double": ("printf '%s' \"'${item}'\"", "'{}'"),
    "here_string": ("cat <<< ${item}", "{}\n"),
    "after_comment": ("# it's a comment\nprintf '%s' ${item} # and ${item}'s", "{}"),
    "test_brackets": ("[[ ${item} == '${item}' && \"${item}\" == ${item} ]] && printf yes", "yes"),
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=values, context=st.sampled_from(sorted(CONTEXTS)))
@example(value="a\nEOF\ntouch canary\nEOF\n", context="heredoc_quoted")
@example(value="TREEFORK_EOF_0\n$(touch canary)", context="heredoc_tabs_quoted")
@example(value="'; touch canary; '", context="single")
@example(value="a[$(touch canary)]", context="ansi")
def test_shell_receives_exactly_the_value_and_never_runs_it(value: str, context: str) -> None:
    template, expected = CONTEXTS[context]
    output, canary = shell_output(template, {"item": value})
    assert output == expected.replace("{}", value)
    assert not canary


@pytest.mark.parametrize("context", sorted(CONTEXTS))
@pytest.mark.parametrize("value", PAYLOADS)
def test_every_crafted_payload_in_every_context(value: str, context: str) -> None:
    template, expected = CONTEXTS[context]
    output, canary = shell_output(template, {"item": value})
    assert (output, canary) == (expected.replace("{}", value), False)


@settings(max_examples=25, deadline=None)
@given(value=values)
def test_structured_values_are_passed_as_compact_json(value: str) -> None:
    item = {"name": value, "tags": [value, 1, True, None]}
    output, canary = shell_output("printf '%s' '${item}'", {"item": item})
    assert output == stringify(item)
    assert not canary


def test_large_values_go_through_files_and_arrive_intact(tmp_path: Path) -> None:
    big = ("$(touch canary) 'x' \"y\"\n" * 20_000)[: 3 * MAX_ENVIRONMENT_VALUE]
    rendered = render_shell(
        "printf '%s' ${item}; printf '%s' \"${small}\"", {"item": big, "small": "s"}
    )
    assert list(rendered.files.values()) == [big]
    assert rendered.env == {"TREEFORK_V2": "s"}
    assert run_bash(rendered, tmp_path) == big + "s"
    assert not (tmp_path / "canary").exists()


def test_many_medium_values_overflow_into_files(tmp_path: Path) -> None:
    scope = {f"v{index}": chr(97 + index) * 60_000 for index in range(12)}
    template = "; ".join(f"printf '%s' ${{v{index}}}" for index in range(12))
    rendered = render_shell(template, scope)
    assert rendered.files and rendered.env
    assert sum(len(value) for value in rendered.env.values()) <= 512 * 1024
    assert run_bash(rendered, tmp_path) == "".join(scope.values())


def test_the_same_value_is_bound_once() -> None:
    rendered = render_shell("echo ${a} ${b} '${a}'", {"a": "x", "b": "x"})
    assert rendered.env == {"TREEFORK_V1": "x"}


def test_value_names_avoid_names_the_script_uses() -> None:
    rendered = render_shell("echo $TREEFORK_V1 ${item}", {"item": "x"})
    assert rendered.env == {"TREEFORK_V2": "x"}


# --- what the user wrote stays as written -----------------------------------------------


@pytest.mark.parametrize(
    "script",
    [
        "wc -l file | awk '{print $1}'",
        "awk '{sum+=$1} END {print sum}'",
        'count=$(ls | wc -l); echo "Found $count"',
        "echo ${HOME} $PATH ${USER:-nobody}",
        "echo ${#list[@]} ${x//a/b} ${y%.*} $1 $@ $? $$ ${!ref}",
        "for f in *.txt; do echo ${f}; done",
        "read -r line; echo ${line}",
        "local total=0; echo ${total}",
        "export LEVEL=1; echo ${LEVEL}",
        "declare -a files=(a b); echo ${files[0]}",
        "echo \\${item}",
        "echo $((total + value))",
        "cat <<'EOF'\n${HOME} $x `y`\nEOF",
        "# ${nothing} here\necho ok",
        "echo $'tab\\there'",
    ],
)
def test_shell_syntax_of_the_user_is_left_untouched(script: str) -> None:
    rendered = render_shell(script, {"name": "value"})
    assert rendered == RenderedShell(script, {}, {})


def test_assigned_shell_variable_keeps_its_shell_default() -> None:
    script = "name=${1}; echo ${mode:-fast}; mode=slow"
    assert render_shell(script, {}).script == script


def test_unknown_variable_suggests_the_closest_name() -> None:
    with pytest.raises(
        InterpolationError, match=r"unknown variable \$\{nme\}; did you mean \$\{name\}\?"
    ):
        render_shell("echo ${nme}", {"name": "x"})


def test_missing_item_field_names_the_fields_there_are() -> None:
    with pytest.raises(InterpolationError, match="item has no field 'x'; fields: id, name"):
        render_shell("echo ${item.x}", {"item": {"id": 1, "name": "a"}})


def test_item_outside_the_map_phase_is_an_error_even_in_upper_case_style() -> None:
    with pytest.raises(InterpolationError, match="not in scope here"):
        render_shell("echo ${item}", {})


def test_shell_expansion_of_a_treefork_variable_is_reported() -> None:
    with pytest.raises(InterpolationError, match="not supported"):
        render_shell("echo ${item//a/b}", {"item": "abc"})


def test_nul_bytes_cannot_be_passed() -> None:
    with pytest.raises(InterpolationError, match="NUL"):
        render_shell("echo ${item}", {"item": "a\x00b"})


def test_arithmetic_accepts_integers_only(tmp_path: Path) -> None:
    assert (
        run_bash(render_shell("echo $(( ${map.total} + 1 ))", {"map": {"total": 4}}), tmp_path)
        == "5\n"
    )
    assert run_bash(render_shell("(( ${n} > 2 )) && echo big", {"n": "3"}), tmp_path) == "big\n"
    with pytest.raises(InterpolationError, match="not an integer"):
        render_shell("echo $(( ${item} ))", {"item": "a[$(touch canary)]"})


HOSTILE_INDEX = "x[$(touch canary)]"


@pytest.mark.parametrize(
    "script",
    [
        "a[${item}]=1",
        "a[1+${item}]+=1",
        "echo ${a[${item}]}",
        'echo "${a[${item}]}"',
        "[[ ${item} -gt 5 ]]",
        '[[ 5 -le "${item}" ]]',
        "[[ $n -eq '${item}' ]]",
    ],
)
def test_arithmetic_positions_of_bash_refuse_non_integers(script: str, tmp_path: Path) -> None:
    with pytest.raises(InterpolationError, match="not an integer"):
        render_shell(script, {"item": HOSTILE_INDEX})
    rendered = render_shell(script + " || true", {"item": "7"})
    run_bash(rendered, tmp_path)


def test_associative_keys_and_plain_tests_take_any_value(tmp_path: Path) -> None:
    script = (
        'declare -A seen; seen[${item}]=1; printf \'%s|\' "${!seen[@]}" "${seen[${item}]}"; '
        "[[ ${item} == '${item}' ]] && printf ok; [ 1 -eq 1 ] && echo file[${item}]"
    )
    output = run_bash(render_shell(script, {"item": HOSTILE_INDEX}), tmp_path)
    assert output == f"{HOSTILE_INDEX}|1|okfile[{HOSTILE_INDEX}]\n"
    assert not (tmp_path / "canary").exists()


def test_defaults_apply_when_the_variable_or_field_is_missing(tmp_path: Path) -> None:
    scope = {"map": {"total": 2}}
    script = "echo ${map.duration|default:unknown} ${missing:-none} ${map.total:-x} '${other:-a b}'"
    assert run_bash(render_shell(script, scope), tmp_path) == "unknown none 2 a b\n"


def test_nested_fields_and_indexes_resolve(tmp_path: Path) -> None:
    scope = {"item": {"a": {"b": [{"c": "deep"}, "second"]}, "key with space": 1}}
    script = "echo ${item.a.b[0].c} ${item.a.b[-1]} ${item.a.b.1} ${item['key with space']}"
    assert run_bash(render_shell(script, scope), tmp_path) == "deep second second 1\n"


# --- Prodigy's workflows ------------------------------------------------------------------


def test_prodigy_report_line_writes_json_into_a_file_named_after_the_item(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    scope = {"item": "src/it's$(main).rs", "file_report": {"file": "x", "lines": 3}}
    script = "echo '${file_report}' > reports/$(basename ${item}).json"
    run_bash(render_shell(script, scope), tmp_path)
    assert (tmp_path / "reports" / "it's$(main).rs.json").read_text() == '{"file":"x","lines":3}\n'


def test_prodigy_json_template_in_single_quotes(tmp_path: Path) -> None:
    script = """echo '{
  "repository": "'$(basename $(pwd))'",
  "commit": "${commit_hash}",
  "total_files": ${total_files}
}'"""
    output = run_bash(render_shell(script, {"commit_hash": "abc", "total_files": 7}), tmp_path)
    assert (
        output
        == f'{{\n  "repository": "{tmp_path.name}",\n  "commit": "abc",\n  "total_files": 7\n}}\n'
    )


def test_prodigy_report_heredoc_with_metadata(tmp_path: Path) -> None:
    script = "cat << EOF\nCommit: ${metadata.commit}\nDone: ${map.successful}/${map.total}\nEOF"
    scope = {"metadata": {"commit": "abc123"}, "map": {"successful": 2, "total": 3}}
    assert run_bash(render_shell(script, scope), tmp_path) == "Commit: abc123\nDone: 2/3\n"


def test_prodigy_item_fields_in_a_multiline_script(tmp_path: Path) -> None:
    script = (
        'echo "Processing ${item.name} (id=${item.id})"\n'
        'echo "Item: ${item.name}" > output-${item.name}.txt\n'
        "jq -n --arg area \"${item.name}\" '{area: $area}' >/dev/null 2>&1 || true\n"
        "if [ ${line_count} -gt 500 ]; then echo high; else echo low; fi"
    )
    scope = {"item": {"name": "a b", "id": 3}, "line_count": 12}
    assert run_bash(render_shell(script, scope), tmp_path) == "Processing a b (id=3)\nlow\n"
    assert (tmp_path / "output-a b.txt").read_text() == "Item: a b\n"


def test_prodigy_env_names_in_scope_are_interpolated_else_left_to_the_shell() -> None:
    rendered = render_shell("mkdir -p ${OUTPUT_DIR} ${TMPDIR} $PROJECT", {"OUTPUT_DIR": "out"})
    assert rendered.script == 'mkdir -p "${TREEFORK_V1}" ${TMPDIR} $PROJECT'


# --- text ---------------------------------------------------------------------------------


def test_text_substitutes_values_as_text() -> None:
    scope = {**item_scope({"path": "a.py"}, item_id="1", item_index=0, item_total=2), "N": 3}
    prompt = "/fix ${item.path} (${item_index}/${item_total}) $N $x $${literal} ${item_json}"
    assert render_text(prompt, scope) == '/fix a.py (0/2) 3 $x ${literal} {"path":"a.py"}'


def test_text_has_no_shell_to_leave_upper_case_names_to() -> None:
    with pytest.raises(InterpolationError, match="unknown variable"):
        render_text("${HOME}", {})
    assert render_text("${HOME:-/root}", {}) == "/root"


def test_text_rejects_shell_only_syntax_with_a_hint() -> None:
    with pytest.raises(InterpolationError, match=r"write \$\$\{"):
        render_text("${#x}", {"x": "a"})


# --- resolve, stringify, references -------------------------------------------------------


def test_resolve_reads_into_json_text() -> None:
    assert resolve("shell.output.status", {"shell": {"output": '{"status": "ok"}'}}) == "ok"


def test_resolve_reports_index_out_of_range_and_wrong_types() -> None:
    with pytest.raises(InterpolationError, match=r"item.tags has no index 5 \(it has 2 elements\)"):
        resolve("item.tags[5]", {"item": {"tags": [1, 2]}})
    with pytest.raises(InterpolationError, match=r"item\.name is a string"):
        resolve("item.name.first", {"item": {"name": "x"}})


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("text", "text"),
        ({"a": [1, "é"]}, '{"a":[1,"é"]}'),
        ([1, 2], "[1,2]"),
        (True, "true"),
        (False, "false"),
        (3, "3"),
        (2.5, "2.5"),
        (None, ""),
    ],
)
def test_stringify(value: Any, text: str) -> None:
    assert stringify(value) == text


def test_references_lists_every_reference_with_its_span_and_default() -> None:
    template = "a ${item.x[0]} ${n:-d} ${m|default:e} ${#skip} $${escaped}"
    assert references(template) == (
        Reference("item.x[0]", 2, 14, None),
        Reference("n", 15, 22, "d"),
        Reference("m", 23, 37, "e"),
    )


def test_item_scope_holds_the_item_keys() -> None:
    assert item_scope("a", item_id="a", item_index=1, item_total=None) == {
        "item": "a",
        "item_json": '"a"',
        "item_id": "a",
        "item_index": 1,
    }
