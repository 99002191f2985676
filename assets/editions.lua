-- The book's editions (`sgdlab-editions` in _quarto.yml; the first is the site's root, each other one
-- sits in a folder named after its profile). On every HTML page: a language switch leading to the same
-- page of each other edition (both editions have the same page paths: _quarto-zh.yml). In an edition
-- other than the first, a chapter that is not translated yet (listed as the English file, not its
-- X.<profile>.qmd twin) opens with the note `sgdlab-untranslated`, in HTML and in the PDF.
-- The built-in engine does the same in Python (sgdlab/render/editions.py).

local function text(v)
  return v and pandoc.utils.stringify(v) or ""
end

local function editions(meta)
  local out = {}
  for _, e in ipairs(meta["sgdlab-editions"] or {}) do
    table.insert(out, {profile = text(e.profile), name = text(e.name), lang = text(e.lang)})
  end
  return out
end

-- The active edition: the first profile of this render that names one (else the default, the first).
local function current(list)
  for _, p in ipairs(quarto.project.profile or {}) do
    for i, e in ipairs(list) do
      if e.profile == p then return i end
    end
  end
  return 1
end

local function relative(file)
  local dir = quarto.project.directory
  return file:sub(1, #dir + 1) == dir .. "/" and file:sub(#dir + 2) or file
end

-- A source's page inside its edition: `.qmd` → `.html`, a translation's `.<profile>` dropped.
local function page(file, profile)
  local rel = relative(file):gsub("%." .. profile .. "%.qmd$", ".qmd")
  return (rel:gsub("%.qmd$", ".html"))
end

local function translated(file, profile)
  return file:match("%." .. profile .. "%.qmd$") ~= nil
end

local function switch(list, k)
  local here, links = page(quarto.doc.input_file, list[k].profile), {}
  local up = quarto.project.offset .. "/" .. (k > 1 and "../" or "")
  for i, e in ipairs(list) do
    if i == k then
      table.insert(links, string.format('<span lang="%s" aria-current="page">%s</span>', e.lang, e.name))
    else
      local href = up .. (i > 1 and (e.profile .. "/") or "") .. here
      table.insert(links, string.format('<a href="%s" hreflang="%s" lang="%s">%s</a>', href, e.lang, e.lang, e.name))
      quarto.doc.include_text("in-header", string.format('<link rel="alternate" hreflang="%s" href="%s">', e.lang, href))
    end
  end
  quarto.doc.include_text("before-body", '<nav class="sgdlab-editions" aria-label="English / 中文">'
    .. table.concat(links, " · ") .. "</nav>")
end

-- The chapter file a block of the PDF's one document starts (Quarto marks each with a comment).
local function book_item(block)
  if block.t ~= "RawBlock" then return nil end
  local b64 = block.text:match("quarto%-file%-metadata: ([A-Za-z0-9+/=]+)")
  if not b64 then return nil end
  local ok, data = pcall(function() return quarto.json.decode(quarto.base64.decode(b64)) end)
  return ok and type(data) == "table" and data.bookItemFile or nil
end

local function note(meta)
  local u = meta["sgdlab-untranslated"]
  local callout = quarto.Callout({type = "note", title = pandoc.Inlines({pandoc.Str(text(u.title))}),
                                  content = pandoc.read(text(u.text), "markdown").blocks})
  return callout
end

-- The note after the title of every chapter not translated: a page holds one chapter (its title is
-- in the page's header by now: the note opens the body), the PDF's document all of them.
local function mark_untranslated(doc, profile)
  local out, pending, marked = pandoc.Blocks({}), nil, false
  for _, block in ipairs(doc.blocks) do
    local file = book_item(block)
    if file then
      marked = true
      pending = not translated(file, profile)
    end
    out:insert(block)
    if pending and block.t == "Header" and block.level == 1 then
      out:insert(note(doc.meta))
      pending = false
    end
  end
  if not marked and not translated(relative(quarto.doc.input_file), profile) then
    out:insert(1, note(doc.meta))
  end
  doc.blocks = out
  return doc
end

function Pandoc(doc)
  local list = editions(doc.meta)
  if #list < 2 then return nil end
  local k = current(list)
  if quarto.doc.is_format("html") then switch(list, k) end
  if k == 1 or not doc.meta["sgdlab-untranslated"] then return doc end
  return mark_untranslated(doc, list[k].profile)
end
