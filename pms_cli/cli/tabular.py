"""Tables that survive pipes: Rich on a terminal, tab-separated rows otherwise (as `gh` does).

Piped through ``cut``/``awk`` or redirected to a file, a Rich table is drawn for an 80-column
screen nobody sees and cuts ids, secrets and numbers to fit. Without a terminal every cell is
printed whole, one row per line, columns separated by a tab, header first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text


def plain_rows(table: Table) -> list[list[str]]:
    """The header and each row of ``table`` as plain text (markup removed, nothing cut)."""
    from rich.text import Text

    columns = [[str(c.header), *(_plain(cell, Text) for cell in c.cells)] for c in table.columns]
    return [list(row) for row in zip(*columns, strict=True)] if columns else []


def _plain(cell: object, text: type[Text]) -> str:
    if isinstance(cell, str):
        return text.from_markup(cell).plain
    plain = getattr(cell, "plain", None)
    return plain if isinstance(plain, str) else str(cell)


def fits(table: Table, console: Console) -> bool:
    """Whether every column can show its longest word (an id, a number) on this console."""
    from rich.cells import cell_len

    rows = plain_rows(table)
    if not rows:
        return True
    longest = [
        max(cell_len(word) for row in rows for word in (row[i].split() or [""]))
        for i in range(len(rows[0]))
    ]
    padding = 2 * len(longest)  # one space either side of each cell
    borders = len(longest) + 1
    return sum(longest) + padding + borders <= console.width


def print_table(table: Table, console: Console | None = None) -> None:
    """``table`` on ``console`` (default stdout): Rich on a terminal wide enough for it, else
    tab-separated rows (a narrow or dumb terminal would otherwise get ids and numbers cut)."""
    if console is None:
        from pms_cli.cli.output import out

        console = out
    if console.is_terminal and fits(table, console):
        console.print(table)
        return
    if table.title and console.is_terminal:
        console.file.write(f"{table.title}\n")
    file = console.file
    for row in plain_rows(table):
        file.write("\t".join(cell.replace("\t", " ").replace("\n", "; ") for cell in row) + "\n")
    file.flush()
