; Inno Setup script for Live Edit (Windows installer with Start-menu entry and uninstaller).
; Run by `python packaging/build.py windows`, which passes:
;   /DAppVersion=<pyproject version>  /DSourceDir=<frozen app folder>
;   /DOutputDir=<where the setup .exe goes>  /DIconFile=<liveedit.ico rendered at build time>
; Per-user install by default (no admin rights needed on a help-desk PC); an administrator
; can choose "for all users" in the dialog.

#ifndef AppVersion
  #error AppVersion must be passed with /DAppVersion=...
#endif
#ifndef SourceDir
  #error SourceDir must be passed with /DSourceDir=...
#endif
#ifndef OutputDir
  #define OutputDir "."
#endif
#ifndef IconFile
  #error IconFile must be passed with /DIconFile=...
#endif

[Setup]
; AppId identifies the product for upgrades and the uninstaller: never change it.
AppId={{6A0C3E0B-5C1E-4D0F-9B7E-3F5B2D8C1A47}
AppName=Live Edit
AppVersion={#AppVersion}
AppVerName=Live Edit {#AppVersion}
AppPublisher=Live Edit
DefaultDirName={autopf}\Live Edit
DefaultGroupName=Live Edit
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir={#OutputDir}
OutputBaseFilename=LiveEdit-{#AppVersion}-setup
SetupIconFile={#IconFile}
UninstallDisplayIcon={app}\LiveEdit.exe
UninstallDisplayName=Live Edit {#AppVersion}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
CloseApplications=yes
ChangesEnvironment=no

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
; LiveEdit.exe is the windowed twin of liveedit.exe (no console window); liveedit.exe stays
; for `liveedit server …` / `liveedit client …` in a terminal.
Name: "{autoprograms}\Live Edit"; Filename: "{app}\LiveEdit.exe"; WorkingDir: "{app}"
Name: "{autodesktop}\Live Edit"; Filename: "{app}\LiveEdit.exe"; WorkingDir: "{app}"; Tasks: desktopicon

[Run]
Filename: "{app}\LiveEdit.exe"; Description: "{cm:LaunchProgram,Live Edit}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; only what the installer put there; the rep's profile (%LOCALAPPDATA%\liveedit) is kept
Type: filesandordirs; Name: "{app}\_internal"
